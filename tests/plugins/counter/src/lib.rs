//! A counter in the kv capability, from prime: `/count` adds one to `hits`
//! and answers the new value; `/count?peek` answers the value unchanged.
//! A KV error is answered 503 with the host's error. Other requests go
//! through.

use kavro_sdk::{export, kv, Manifest, Plugin, Prime, PrimeOutcome, Reply, Request};

#[derive(Default)]
struct Counter;

impl Plugin for Counter {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("counter", env!("CARGO_PKG_VERSION"))
    }
}

impl Prime for Counter {
    fn on_request(&self, _: &mut (), req: &Request) -> PrimeOutcome {
        if req.path() != "/count" {
            return PrimeOutcome::Continue;
        }
        let counted = if req.query().as_deref() == Some("peek") {
            kv::get("hits")
                .map(|v| v.map_or(0, |b| String::from_utf8_lossy(&b).parse().unwrap_or(-1)))
        } else {
            kv::increment("hits", 1, None)
        };
        PrimeOutcome::Respond(match counted {
            Ok(n) => Reply::new(200).body(format!("{n}")),
            Err(e) => Reply::new(503).body(format!("{e:?}")),
        })
    }
}

export!(Counter: prime);
