//! Exports prime alone: answers a request that carries `x-answer`, spins
//! until its deadline on `x-spin`, and lets every other request through.

use kavro_sdk::{export, Manifest, Plugin, Prime, PrimeOutcome, Reply, Request};

#[derive(Default)]
struct OnlyPrime;

impl Plugin for OnlyPrime {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("only-prime", env!("CARGO_PKG_VERSION"))
    }
}

impl Prime for OnlyPrime {
    fn on_request(&self, _: &mut (), req: &Request) -> PrimeOutcome {
        if req.header("x-spin").is_some() {
            loop {
                std::hint::spin_loop();
            }
        }
        match req.header("x-answer") {
            Some(_) => PrimeOutcome::Respond(Reply::new(200).body("answered by prime\n")),
            None => PrimeOutcome::Continue,
        }
    }
}

export!(OnlyPrime: prime);
