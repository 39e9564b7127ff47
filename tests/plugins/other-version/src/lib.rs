//! A plugin built against `kavro:plugin@0.0.9`: the host must refuse it at
//! load, naming the interfaces it expected and the ones it found.

wit_bindgen::generate!({ path: "wit", world: "kavro:old/old", generate_all });

use exports::kavro::plugin::{plugin, prime};

struct Old;

impl plugin::Guest for Old {
    fn describe() -> kavro::plugin::types::Manifest {
        kavro::plugin::types::Manifest {
            name: "other-version".into(),
            version: "0.0.9".into(),
            capabilities: vec![],
        }
    }
}

impl prime::Guest for Old {
    fn on_request(_seq: u64, _req: &kavro::plugin::types::Request) -> prime::Outcome {
        prime::Outcome::Continue
    }
}

export!(Old);
