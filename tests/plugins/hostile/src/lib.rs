//! Misbehaves as the request's `x-hostile` header asks, so that the tests
//! can prove the host contains it:
//!
//! - `loop-prime`, `loop-prepare`, `loop-present`, `loop-package`,
//!   `loop-post`: spin forever in that phase; `busy-prime`: compute for
//!   about three milliseconds in prime, then go on (a long call, not a loop);
//! - `trap`: panic; `memory`: allocate until refused; `stack`: recurse
//!   without end;
//! - `huge-body`: answer with 8 MiB; `headers`: add 5000 response headers;
//! - `bad-header`, `bad-status`: answer with what HTTP cannot carry;
//! - `bad-uri`: rewrite to a malformed URI; `undeclared`: forward to an
//!   upstream the host does not know;
//! - `denied`: call the KV store without the grant and report the answer.

use kavro_sdk::{
    export, kv, Completion, Forward, Manifest, Package, Plugin, Post, Prepare, PrepareOutcome,
    Present, PresentOutcome, Prime, PrimeOutcome, Reply, Request, Response,
};

#[derive(Default)]
struct Hostile;

#[derive(Default)]
struct Mode(String);

impl Plugin for Hostile {
    type State = Mode;
    fn manifest(&self) -> Manifest {
        Manifest::new("hostile", env!("CARGO_PKG_VERSION"))
    }
}

fn spin() -> ! {
    let mut i: u64 = 0;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}

/// About three milliseconds of arithmetic: past the 300 µs a call may
/// compute on a worker whatever the phase of the epoch's ticks (up to a
/// millisecond apart) when it starts, and far inside a 50 ms deadline.
fn busy() {
    let mut i: u64 = 0;
    for _ in 0..6_000_000u64 {
        i = std::hint::black_box(i.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[0]
}

impl Prime for Hostile {
    fn on_request(&self, mode: &mut Mode, req: &Request) -> PrimeOutcome {
        mode.0 = req.header("x-hostile").unwrap_or_default();
        match mode.0.as_str() {
            "loop-prime" => spin(),
            "busy-prime" => {
                busy();
                PrimeOutcome::Continue
            }
            "trap" => panic!("hostile: trap on purpose"),
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "leak" => {
                // A MiB that is never freed: memory grows with every request.
                std::mem::forget(std::hint::black_box(vec![1u8; 1 << 20]));
                PrimeOutcome::Continue
            }
            "stack" => PrimeOutcome::Respond(Reply::new(200).body(recurse(0).to_string())),
            "bad-uri" => PrimeOutcome::Rewrite("no slash and spaces".into()),
            "denied" => {
                let answer = match kv::increment("n", 1, None) {
                    Ok(n) => format!("granted: {n}"),
                    Err(e) => format!("refused: {e:?}"),
                };
                PrimeOutcome::Respond(Reply::new(200).body(answer))
            }
            _ => PrimeOutcome::Continue,
        }
    }
}

impl Prepare for Hostile {
    fn on_prepare(&self, mode: &mut Mode, _: &Request) -> PrepareOutcome {
        match mode.0.as_str() {
            "loop-prepare" => spin(),
            "huge-body" => PrepareOutcome::Respond(Reply::new(200).body(vec![b'x'; 8 << 20])),
            "bad-header" => PrepareOutcome::Respond(Reply::new(200).header("bad header", "x\r\ny")),
            "bad-status" => PrepareOutcome::Respond(Reply::new(42)),
            "undeclared" => PrepareOutcome::Forward(Forward::to("nowhere")),
            _ => PrepareOutcome::Decline,
        }
    }
}

impl Present for Hostile {
    fn on_body(&self, mode: &mut Mode, _: &Request, _: &Response, _: Vec<u8>) -> PresentOutcome {
        if mode.0 == "loop-present" {
            spin()
        }
        PresentOutcome::Keep
    }
}

impl Package for Hostile {
    fn on_response(&self, mode: &mut Mode, _: &Request, resp: &Response) {
        match mode.0.as_str() {
            "loop-package" => spin(),
            "headers" => {
                for i in 0..5000 {
                    let _ = resp.append_header(&format!("x-flood-{i}"), "1");
                }
            }
            _ => {}
        }
    }
}

impl Post for Hostile {
    fn on_complete(&self, mode: &mut Mode, _: &Request, _: &Response, _: &Completion) {
        if mode.0 == "loop-post" {
            spin()
        }
    }
}

export!(Hostile: prime, prepare, present, package, post);
