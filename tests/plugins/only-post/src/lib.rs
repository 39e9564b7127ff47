//! Exports post alone: reads what was sent (its calls are counted by the
//! host), and spins until its deadline on `x-spin`.

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
        if req.header("x-spin").is_some() {
            loop {
                std::hint::spin_loop();
            }
        }
        std::hint::black_box(done.status);
    }
}

export!(OnlyPost: post);
