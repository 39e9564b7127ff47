//! Exports prepare alone: answers a request that carries `x-answer`, spins
//! until its deadline on `x-spin`, and declines every other request so that
//! the route's own action runs.

use kavro_sdk::{export, Manifest, Plugin, Prepare, PrepareOutcome, Reply, Request};

#[derive(Default)]
struct OnlyPrepare;

impl Plugin for OnlyPrepare {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("only-prepare", env!("CARGO_PKG_VERSION"))
    }
}

impl Prepare for OnlyPrepare {
    fn on_prepare(&self, _: &mut (), req: &Request) -> PrepareOutcome {
        if req.header("x-spin").is_some() {
            loop {
                std::hint::spin_loop();
            }
        }
        match req.header("x-answer") {
            Some(_) => PrepareOutcome::Respond(Reply::new(200).body("answered by prepare\n")),
            None => PrepareOutcome::Decline,
        }
    }
}

export!(OnlyPrepare: prepare);
