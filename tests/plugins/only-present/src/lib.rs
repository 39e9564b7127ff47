//! Exports present alone, as a first plugin written from the README would:
//! upper-cases every body it is given, and spins until its deadline on
//! `x-spin`.

use kavro_sdk::{export, Manifest, Plugin, Present, PresentOutcome, Request, Response};

#[derive(Default)]
struct OnlyPresent;

impl Plugin for OnlyPresent {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("only-present", env!("CARGO_PKG_VERSION"))
    }
}

impl Present for OnlyPresent {
    fn on_body(&self, _: &mut (), req: &Request, _: &Response, body: Vec<u8>) -> PresentOutcome {
        if req.header("x-spin").is_some() {
            loop {
                std::hint::spin_loop();
            }
        }
        PresentOutcome::Replace(body.to_ascii_uppercase())
    }
}

export!(OnlyPresent: present);
