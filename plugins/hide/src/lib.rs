//! `!> hide` on a static file's first line: the file is never served, its
//! URL answers 404 `not found` as a missing file does. For files other
//! plugins read from disk (templates for `tmpl`, say) that sit in a served
//! folder. No settings.

use kavro_sdk::{
    export, log, Directive, Manifest, Plugin, Present, PresentOutcome, Request, Response,
};

/// What a hidden file answers: the status, content type and body of a
/// missing file's.
const STATUS: u16 = 404;
const CONTENT_TYPE: &str = "text/plain; charset=utf-8";
const BODY: &[u8] = b"not found\n";

#[derive(Default)]
struct Hide;

impl Plugin for Hide {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")).answers("hide")
    }
}

impl Present for Hide {
    fn on_directive(
        &self,
        _: &mut (),
        req: &Request,
        resp: &Response,
        _body: Vec<u8>,
        _: &Directive,
    ) -> PresentOutcome {
        if let Err(e) = resp.set_status(STATUS) {
            // The body is replaced all the same: the file is never sent.
            log::error(&format!("hide: cannot set 404 for {}: {e:?}", req.path()));
        }
        let _ = resp.set_header("content-type", CONTENT_TYPE);
        PresentOutcome::Replace(BODY.to_vec())
    }
}

export!(Hide: present);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_a_missing_file() {
        // As the host's own 404 for a static file that is not there.
        assert_eq!(STATUS, 404);
        assert_eq!(BODY, b"not found\n");
        assert!(CONTENT_TYPE.starts_with("text/plain"));
    }
}
