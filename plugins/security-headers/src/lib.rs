//! Security response headers with Kvarn-like defaults, in package, so that
//! the responses package sees get them: produced ones, proxied ones, errors
//! and cache hits. A header the response already carries (the
//! application's own choice) is kept unless `override = "true"`; HSTS
//! already there (the TLS listener's `hsts`, or the application's) is
//! always kept. A setting left empty turns its header off.
//!
//! ```toml
//! [config]
//! content_security_policy = "default-src 'self'"
//! x_content_type_options = "nosniff"
//! referrer_policy = "strict-origin-when-cross-origin"
//! x_frame_options = "SAMEORIGIN"
//! # Sent only on requests that came over TLS (browsers ignore it on HTTP).
//! strict_transport_security = "max-age=63072000; includeSubDomains"
//! override = "false"
//! ```

use kavro_sdk::{config, export, Manifest, Package, Plugin, Request, Response};

/// Each header with its setting's key and default.
const HEADERS: [(&str, &str, &str); 4] = [
    (
        "content-security-policy",
        "content_security_policy",
        "default-src 'self'",
    ),
    (
        "x-content-type-options",
        "x_content_type_options",
        "nosniff",
    ),
    (
        "referrer-policy",
        "referrer_policy",
        "strict-origin-when-cross-origin",
    ),
    ("x-frame-options", "x_frame_options", "SAMEORIGIN"),
];
const HSTS: (&str, &str, &str) = (
    "strict-transport-security",
    "strict_transport_security",
    "max-age=63072000; includeSubDomains",
);

/// A header's value from its setting, or its default; `None` when the
/// operator turned it off with an empty value.
fn setting((name, key, default): (&'static str, &str, &str)) -> Option<(&'static str, String)> {
    let value = config::get(key).unwrap_or_else(|| default.to_string());
    let value = value.trim();
    (!value.is_empty()).then(|| (name, value.to_string()))
}

struct SecurityHeaders {
    always: Vec<(&'static str, String)>,
    hsts: Option<(&'static str, String)>,
    overrides: bool,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        SecurityHeaders {
            always: HEADERS.into_iter().filter_map(setting).collect(),
            hsts: setting(HSTS),
            overrides: config::get("override").is_some_and(|v| v.trim() == "true"),
        }
    }
}

impl SecurityHeaders {
    fn apply(&self, resp: &Response, name: &str, value: &str, overrides: bool) {
        if overrides || resp.header(name).is_none() {
            let _ = resp.set_header(name, value);
        }
    }
}

impl Plugin for SecurityHeaders {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    }
}

impl Package for SecurityHeaders {
    fn on_response(&self, _: &mut (), req: &Request, resp: &Response) {
        for (name, value) in &self.always {
            self.apply(resp, name, value, self.overrides);
        }
        if let Some((name, value)) = &self.hsts {
            if req.scheme() == "https" {
                // Never weakened or strengthened behind the operator's back.
                self.apply(resp, name, value, false);
            }
        }
    }
}

export!(SecurityHeaders: package);
