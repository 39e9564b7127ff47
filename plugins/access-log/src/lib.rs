//! Writes one JSON line per request through the host log, in post: after
//! the response is written, off the latency path.
//!
//! ```json
//! {"id":"…","client":"127.0.0.1","method":"GET","host":"example.com","uri":"/a?b=1",
//!  "status":200,"bytes":512,"duration_us":830,"upstream":"app","referer":null,
//!  "user_agent":"curl/8.0","error":null}
//! ```
//!
//! ```toml
//! [config]
//! # Extra request headers to log, `;`-separated; each becomes a field
//! # named after the header.
//! headers = "x-tenant; accept-language"
//! ```

use kavro_sdk::{config, export, log, Completion, Manifest, Plugin, Post, Request, Response};
use serde::Serialize;
use std::collections::BTreeMap;

/// One line, serialized straight from what the host returned.
#[derive(Serialize)]
struct Line<'a> {
    id: String,
    client: String,
    method: String,
    host: Option<String>,
    uri: String,
    status: u16,
    bytes: u64,
    duration_us: u64,
    upstream: Option<&'a str>,
    referer: Option<String>,
    user_agent: Option<String>,
    error: Option<&'a str>,
    #[serde(flatten)]
    extra: BTreeMap<&'a str, Option<String>>,
}

struct AccessLog {
    extra_headers: Vec<String>,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            extra_headers: config::get("headers")
                .unwrap_or_default()
                .split(';')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }
}

impl Plugin for AccessLog {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    }
}

impl Post for AccessLog {
    fn on_complete(&self, _: &mut (), req: &Request, _resp: &Response, done: &Completion) {
        let line = Line {
            id: req.id(),
            client: req.client_ip(),
            method: req.method(),
            host: req.authority(),
            uri: req.uri(),
            status: done.status,
            bytes: done.bytes_sent,
            duration_us: done.duration_us,
            upstream: done.upstream.as_deref(),
            referer: req.header("referer"),
            user_agent: req.header("user-agent"),
            error: done.error.as_deref(),
            extra: self
                .extra_headers
                .iter()
                .map(|h| (h.as_str(), req.header(h)))
                .collect(),
        };
        if let Ok(text) = serde_json::to_string(&line) {
            log::info(&text);
        }
    }
}

export!(AccessLog: post);
