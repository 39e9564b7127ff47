//! Present appends `<mark>` to the body, `mark` from its settings (`[plugins.config]`),
//! so a chain of several shows the order they ran in.

use kavro_sdk::{config, export, Manifest, Plugin, Present, PresentOutcome, Request, Response};

#[derive(Default)]
struct Stamp;

impl Plugin for Stamp {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new("stamp", env!("CARGO_PKG_VERSION"))
    }
}

impl Present for Stamp {
    fn on_body(&self, _: &mut (), _: &Request, _: &Response, mut body: Vec<u8>) -> PresentOutcome {
        let mark = config::get("mark").unwrap_or_else(|| "?".to_string());
        body.extend_from_slice(format!("<{mark}>").as_bytes());
        PresentOutcome::Replace(body)
    }
}

export!(Stamp: present);
