//! package: copies request header `x-in` to response header `x-out`. The
//! same plugin exists in C, Python and TypeScript under bench/plugins/.

use kavro_sdk::{export, Manifest, Package, Plugin, Request, Response};

#[derive(Default)]
struct Echo;

impl Plugin for Echo {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("echo-header", env!("CARGO_PKG_VERSION"))
    }
}

impl Package for Echo {
    fn on_response(&self, _: &mut (), req: &Request, resp: &Response) {
        let v = req.header("x-in").unwrap_or_default();
        let _ = resp.set_header("x-out", &v);
    }
}

export!(Echo: package);
