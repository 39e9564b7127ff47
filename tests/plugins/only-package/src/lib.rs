//! Exports package alone: marks every response with `x-packaged: yes`, and
//! spins until its deadline on `x-spin`.

use kavro_sdk::{export, Manifest, Package, Plugin, Request, Response};

#[derive(Default)]
struct OnlyPackage;

impl Plugin for OnlyPackage {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("only-package", env!("CARGO_PKG_VERSION"))
    }
}

impl Package for OnlyPackage {
    fn on_response(&self, _: &mut (), req: &Request, resp: &Response) {
        if req.header("x-spin").is_some() {
            loop {
                std::hint::spin_loop();
            }
        }
        let _ = resp.set_header("x-packaged", "yes");
    }
}

export!(OnlyPackage: package);
