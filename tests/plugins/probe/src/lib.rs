//! A test plugin that exports all five phases and shows, through HTTP,
//! what each one saw:
//!
//! - prime: `/kv/incr` answers a shared counter, `/kv/last` what post last
//!   recorded, `/rewrite/X` becomes `/X`;
//! - prepare: `/prepared` is answered by the plugin; `x-forward-to: NAME`
//!   forwards to upstream NAME as `/forwarded` with `x-via: probe`;
//! - present: with `x-shout`, the body is upper-cased;
//! - package: `x-probe-phases` lists the phases this request went through
//!   (per-request state: it must never carry over from another request);
//!   `x-probe-edits` shows header changes read back: prime's own, as
//!   prepare saw them, package's own, and a request change refused there;
//! - post: records `STATUS BYTES PATH` in the KV store (not for `/kv/*`).

use kavro_sdk::{
    export, kv, Completion, Forward, Manifest, Package, Plugin, Post, Prepare, PrepareOutcome,
    Present, PresentOutcome, Prime, PrimeOutcome, Reply, Request, Response,
};

#[derive(Default)]
struct Probe;

#[derive(Default)]
struct State {
    /// The path prime saw, before any rewrite.
    path: String,
    /// One letter per phase: r(prime) p(prepare) b(present) k(package).
    phases: String,
    /// `x-probe-mark` as prime read it back after changing it, then as
    /// prepare found it.
    marks: Vec<String>,
}

impl Plugin for Probe {
    type State = State;
    fn manifest(&self) -> Manifest {
        Manifest::new("probe", env!("CARGO_PKG_VERSION")).needs("kv")
    }
}

fn text(status: u16, body: &str) -> Reply {
    Reply::new(status)
        .header("content-type", "text/plain")
        .body(body.as_bytes())
}

impl Prime for Probe {
    fn on_request(&self, s: &mut State, req: &Request) -> PrimeOutcome {
        s.phases.push('r');
        s.path = req.path();
        // Changes read back in the same call.
        let _ = req.set_header("x-probe-mark", "stale");
        let _ = req.set_header("X-Probe-Mark", "1");
        let _ = req.append_header("x-probe-mark", "2");
        s.marks.push(req.header_all("x-probe-mark").join(","));
        match s.path.as_str() {
            "/kv/incr" => match kv::increment("hits", 1, None) {
                Ok(n) => PrimeOutcome::Respond(text(200, &n.to_string())),
                Err(e) => PrimeOutcome::Respond(text(500, &format!("{e:?}"))),
            },
            "/kv/last" => {
                let last = kv::get("last-post").ok().flatten().unwrap_or_default();
                PrimeOutcome::Respond(text(200, &String::from_utf8_lossy(&last)))
            }
            p => match p.strip_prefix("/rewrite") {
                Some(rest) if rest.starts_with('/') => {
                    let query = req.query().map(|q| format!("?{q}")).unwrap_or_default();
                    PrimeOutcome::Rewrite(format!("{rest}{query}"))
                }
                _ => PrimeOutcome::Continue,
            },
        }
    }
}

impl Prepare for Probe {
    fn on_prepare(&self, s: &mut State, req: &Request) -> PrepareOutcome {
        s.phases.push('p');
        s.marks.push(req.header_all("x-probe-mark").join(","));
        if req.path() == "/prepared" {
            return PrepareOutcome::Respond(text(200, "prepared by probe\n"));
        }
        match req.header("x-forward-to") {
            Some(up) => PrepareOutcome::Forward(
                Forward::to(&up)
                    .uri("/forwarded?from=probe")
                    .header("x-via", "probe"),
            ),
            None => PrepareOutcome::Decline,
        }
    }
}

impl Present for Probe {
    fn on_body(
        &self,
        s: &mut State,
        req: &Request,
        resp: &Response,
        body: Vec<u8>,
    ) -> PresentOutcome {
        s.phases.push('b');
        if req.header("x-shout").is_none() {
            return PresentOutcome::Keep;
        }
        let _ = resp.set_header("x-presented", "upper");
        PresentOutcome::Replace(body.to_ascii_uppercase())
    }
}

impl Package for Probe {
    fn on_response(&self, s: &mut State, req: &Request, resp: &Response) {
        s.phases.push('k');
        let _ = resp.set_header("x-probe-gone", "1");
        let _ = resp.remove_header("x-probe-gone");
        let gone = resp.header("x-probe-gone").is_none();
        let refused = req.set_header("x-late", "1").is_err();
        let edits = format!("{}|gone={gone}|refused={refused}", s.marks.join("|"));
        let _ = resp.set_header("x-probe-edits", &edits);
        let _ = resp.set_header("x-probe-phases", &s.phases);
        let _ = resp.set_header("x-probe-path", &s.path);
    }
}

impl Post for Probe {
    fn on_complete(&self, s: &mut State, _req: &Request, _resp: &Response, done: &Completion) {
        // The /kv/* requests read the record; they must not overwrite it.
        if s.path.starts_with("/kv/") {
            return;
        }
        let line = format!("{} {} {}", done.status, done.bytes_sent, s.path);
        let _ = kv::set("last-post", line.as_bytes(), None);
    }
}

export!(Probe: prime, prepare, present, package, post);
