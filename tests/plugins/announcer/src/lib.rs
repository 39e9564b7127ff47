//! Uses the realtime capability from prime: `POST /announce?GROUP` sends
//! the `x-text` header's value to GROUP as `{"announce": TEXT}` and answers
//! `reached N of M`, M being the group's size; the host's error, if the
//! capability was not granted. Other requests go through.

use kavro_sdk::{export, realtime, Manifest, Plugin, Prime, PrimeOutcome, Reply, Request};

#[derive(Default)]
struct Announcer;

impl Plugin for Announcer {
    type State = ();
    fn manifest(&self) -> Manifest {
        // Not declared as a need, so that the host loads it without the
        // grant and its calls show the denial.
        Manifest::new("announcer", env!("CARGO_PKG_VERSION"))
    }
}

impl Prime for Announcer {
    fn on_request(&self, _: &mut (), req: &Request) -> PrimeOutcome {
        if req.path() != "/announce" {
            return PrimeOutcome::Continue;
        }
        let group = req.query().unwrap_or_default();
        let text = req.header("x-text").unwrap_or_default();
        let message = format!("{{\"announce\":{text:?}}}");
        let told = realtime::group_size(&group)
            .and_then(|size| Ok((realtime::publish(&[group.clone()], &message)?, size)));
        let body = match told {
            Ok((reached, size)) => format!("reached {reached} of {size}\n"),
            Err(e) => format!("{e:?}\n"),
        };
        PrimeOutcome::Respond(Reply::new(200).body(body))
    }
}

export!(Announcer: prime);
