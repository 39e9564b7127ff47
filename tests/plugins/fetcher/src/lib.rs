//! prime: `/fetch/UPSTREAM/REST` fetches `/REST` from the named upstream and
//! answers with its status and body; a refusal is answered 200 as
//! `refused: ERROR`, so a test can read it.

use kavro_sdk::{export, http, Manifest, Plugin, Prime, PrimeOutcome, Reply, Request};

#[derive(Default)]
struct Fetcher;

impl Plugin for Fetcher {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("fetcher", env!("CARGO_PKG_VERSION"))
    }
}

impl Prime for Fetcher {
    fn on_request(&self, _: &mut (), req: &Request) -> PrimeOutcome {
        let path = req.path();
        let Some(rest) = path.strip_prefix("/fetch/") else {
            return PrimeOutcome::Continue;
        };
        let (upstream, uri) = rest.split_once('/').unwrap_or((rest, ""));
        let uri = match req.query() {
            Some(q) => format!("/{uri}?{q}"),
            None => format!("/{uri}"),
        };
        PrimeOutcome::Respond(match http::get(upstream, &uri) {
            Ok(r) => Reply::new(200)
                .header("x-fetched-status", &r.status.to_string())
                .body(r.body),
            Err(e) => Reply::new(200).body(format!("refused: {e:?}")),
        })
    }
}

export!(Fetcher: prime);
