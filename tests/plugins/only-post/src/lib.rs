//! Exports post alone: reads what was sent (its calls are counted by the
//! host), spins until its deadline on `x-spin`, panics on `x-panic`, on
//! `x-work: N` works through N iterations before it returns (a post slower
//! than a response), and on `x-n: N` logs `completed N` (tests count the
//! completions delivered).

use kavro_sdk::{export, Completion, Manifest, Plugin, Post, Request, Response};

#[derive(Default)]
struct OnlyPost;

impl Plugin for OnlyPost {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("only-post", env!("CARGO_PKG_VERSION"))
    }
}

impl Post for OnlyPost {
    fn on_complete(&self, _: &mut (), req: &Request, _: &Response, done: &Completion) {
        if req.header("x-panic").is_some() {
            panic!("asked to panic");
        }
        if req.header("x-spin").is_some() {
            loop {
                std::hint::spin_loop();
            }
        }
        let work: u64 = req
            .header("x-work")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut acc = u64::from(done.status);
        for i in 0..work {
            acc = std::hint::black_box(acc.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(acc);
        if let Some(n) = req.header("x-n") {
            kavro_sdk::log::info(&format!("completed {n}"));
        }
    }
}

export!(OnlyPost: post);
