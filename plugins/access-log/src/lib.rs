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
use serde_json::{json, Map, Value};

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
        let mut line = Map::new();
        line.insert("id".into(), json!(req.id()));
        line.insert("client".into(), json!(req.client_ip()));
        line.insert("method".into(), json!(req.method()));
        line.insert("host".into(), json!(req.authority()));
        line.insert("uri".into(), json!(req.uri()));
        line.insert("status".into(), json!(done.status));
        line.insert("bytes".into(), json!(done.bytes_sent));
        line.insert("duration_us".into(), json!(done.duration_us));
        line.insert("upstream".into(), json!(done.upstream));
        line.insert("referer".into(), json!(req.header("referer")));
        line.insert("user_agent".into(), json!(req.header("user-agent")));
        line.insert("error".into(), json!(done.error));
        for h in &self.extra_headers {
            line.insert(h.clone(), json!(req.header(h)));
        }
        log::info(&Value::Object(line).to_string());
    }
}

export!(AccessLog: post);
