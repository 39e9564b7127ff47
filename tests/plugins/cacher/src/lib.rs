//! A test plugin that drives the response cache:
//!
//! - prime: a `session` cookie bypasses the cache; `x-cache-key: K` stores
//!   and looks up under K; `/purge/PREFIX` purges keys starting with PREFIX
//!   and answers how many went;
//! - prepare: `/generated/ttl` answers with a 60 s cache directive,
//!   `/generated/no-store` with no-store; each body carries a fresh count;
//! - present: appends `presented #N` (N counts present runs);
//! - package: `x-packaged: N` counts package runs, hits included.

use std::time::Duration;

use kavro_sdk::{
    cache, export, kv, Manifest, Package, Plugin, Prepare, PrepareOutcome, Present, PresentOutcome,
    Prime, PrimeOutcome, Reply, Request, Response,
};

#[derive(Default)]
struct Cacher;

impl Plugin for Cacher {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("cacher", env!("CARGO_PKG_VERSION"))
            .needs("kv")
            .needs("cache")
    }
}

fn count(name: &str) -> i64 {
    kv::increment(name, 1, None).unwrap_or(-1)
}

impl Prime for Cacher {
    fn on_request(&self, _: &mut (), req: &Request) -> PrimeOutcome {
        if let Some(prefix) = req.path().strip_prefix("/purge/") {
            let body = match cache::purge_prefix(prefix) {
                Ok(n) => format!("purged {n}"),
                Err(e) => format!("error {e:?}"),
            };
            return PrimeOutcome::Respond(Reply::new(200).body(body));
        }
        let has_session = req
            .header("cookie")
            .is_some_and(|c| c.split(';').any(|p| p.trim().starts_with("session=")));
        if has_session {
            let _ = cache::bypass();
        } else if let Some(key) = req.header("x-cache-key") {
            let _ = cache::set_key(&key);
        }
        PrimeOutcome::Continue
    }
}

impl Prepare for Cacher {
    fn on_prepare(&self, _: &mut (), req: &Request) -> PrepareOutcome {
        let reply = |body: String| {
            Reply::new(200)
                .header("content-type", "text/plain")
                .body(body)
        };
        match req.path().as_str() {
            "/generated/ttl" => PrepareOutcome::Respond(
                reply(format!("generated #{}", count("generated")))
                    .cache_for(Duration::from_secs(60)),
            ),
            "/generated/no-store" => PrepareOutcome::Respond(
                reply(format!("generated #{}", count("generated"))).no_store(),
            ),
            _ => PrepareOutcome::Decline,
        }
    }
}

impl Present for Cacher {
    fn on_body(&self, _: &mut (), _: &Request, _: &Response, mut body: Vec<u8>) -> PresentOutcome {
        body.extend_from_slice(format!(" presented #{}", count("presented")).as_bytes());
        PresentOutcome::Replace(body)
    }
}

impl Package for Cacher {
    fn on_response(&self, _: &mut (), _: &Request, resp: &Response) {
        let _ = resp.set_header("x-packaged", &count("packaged").to_string());
    }
}

export!(Cacher: prime, prepare, present, package);
