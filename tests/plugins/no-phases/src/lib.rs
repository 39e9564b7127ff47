//! Exports only `describe`: a well-formed component that does nothing, which
//! the host refuses at load.

use kavro_sdk::bindings::exports::kavro::plugin::plugin::Guest;
use kavro_sdk::Manifest;

struct NoPhases;

impl Guest for NoPhases {
    fn describe() -> Manifest {
        Manifest::new("no-phases", "0.1.0")
    }
}

kavro_sdk::bindings::export_base!(NoPhases with_types_in kavro_sdk::bindings);
