//! Upper-cases every body in present, and exports a package phase that
//! changes nothing: a request's first plugin call is then package, in
//! Pingora's response header filter, before present runs.

use kavro_sdk::{export, Manifest, Package, Plugin, Present, PresentOutcome, Request, Response};

#[derive(Default)]
struct PresentPackage;

impl Plugin for PresentPackage {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("present-package", env!("CARGO_PKG_VERSION"))
    }
}

impl Present for PresentPackage {
    fn on_body(&self, _: &mut (), _: &Request, _: &Response, body: Vec<u8>) -> PresentOutcome {
        PresentOutcome::Replace(body.to_ascii_uppercase())
    }
}

impl Package for PresentPackage {
    fn on_response(&self, _: &mut (), _: &Request, _: &Response) {}
}

export!(PresentPackage: present, package);
