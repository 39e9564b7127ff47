//! The benchmark's header work, as a plugin author would write it: in
//! prime, `x-user-checked` when the client sent `x-user`; in package,
//! `x-frame-options` and `x-powered-by-plugin` on every response. The same
//! work runs natively in `bare-pingora --header-work` and in Lua under
//! nginx, in the same `./dev.sh bench` run.

use kavro_sdk::{export, Manifest, Package, Plugin, Prime, PrimeOutcome, Request, Response};

#[derive(Default)]
struct HeaderWork;

impl Plugin for HeaderWork {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("header-work", env!("CARGO_PKG_VERSION"))
    }
}

impl Prime for HeaderWork {
    fn on_request(&self, _: &mut (), req: &Request) -> PrimeOutcome {
        if req.header("x-user").is_some() {
            let _ = req.set_header("x-user-checked", "true");
        }
        PrimeOutcome::Continue
    }
}

impl Package for HeaderWork {
    fn on_response(&self, _: &mut (), _: &Request, resp: &Response) {
        let _ = resp.set_header("x-frame-options", "DENY");
        let _ = resp.set_header("x-powered-by-plugin", "kavro");
    }
}

export!(HeaderWork: prime, package);
