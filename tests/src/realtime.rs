//! A realtime hub's backend on loopback: a small chat application that
//! answers the hub's events in the hub's JSON, and records them.
//!
//! - `open`: joins `/lobby` and welcomes the client with its id
//!   (`{"welcome": ID}`), choosing the first subprotocol the client
//!   offers; a `Cookie` with `deny` is refused with 403.
//! - `text`: `join G`, `leave G`, `say G TEXT` (`{"text": TEXT}` to G),
//!   `echo TEXT` (`{"echo": TEXT}` back), `sleep MS` (answers
//!   `{"slept": MS}` that much later), `garbage` (not JSON), `fail` (500).
//! - `close`: tells `/lobby` (`{"left": ID}`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One event as the backend received it.
#[derive(Debug, Clone)]
pub struct Event {
    pub frame: String,
    pub client: String,
    pub body: String,
    /// Request headers, lowercase names.
    pub headers: Vec<(String, String)>,
}

impl Event {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Backend {
    pub addr: SocketAddr,
    events: Arc<Mutex<Vec<Event>>>,
    _rt: tokio::runtime::Runtime,
}

impl Backend {
    pub fn start() -> Backend {
        let (rt, listener) = crate::server_runtime("127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = events.clone();
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(req, log.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend {
            addr,
            events,
            _rt: rt,
        }
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// The events of one frame type.
    pub fn events_of(&self, frame: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.frame == frame)
            .collect()
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    log: Arc<Mutex<Vec<Event>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let headers = crate::header_pairs(req.headers());
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (frame, client, cookie, offered) = (
        get("sec-websocket-frame"),
        get("sec-websocket-client"),
        get("cookie"),
        get("sec-websocket-protocol"),
    );
    let body = req.into_body().collect().await.map_or_else(
        |_| String::new(),
        |b| String::from_utf8_lossy(&b.to_bytes()).into_owned(),
    );
    log.lock().unwrap().push(Event {
        frame: frame.clone(),
        client: client.clone(),
        body: body.clone(),
        headers,
    });
    let json = |v: serde_json::Value| (200, v.to_string());
    let (status, text) = match frame.as_str() {
        "open" if cookie.contains("deny") => (403, "not you\n".to_string()),
        "open" => json(serde_json::json!({"+": "/lobby", "welcome": client})),
        "close" => json(serde_json::json!({"@": "/lobby", "left": client})),
        "text" => {
            let mut words = body.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("join"), Some(g), _) => json(serde_json::json!({"+": g})),
                (Some("leave"), Some(g), _) => json(serde_json::json!({"-": g})),
                (Some("say"), Some(g), Some(t)) => json(serde_json::json!({"@": g, "text": t})),
                (Some("echo"), Some(t), rest) => {
                    let t = rest.map_or(t.to_string(), |r| format!("{t} {r}"));
                    json(serde_json::json!({"echo": t}))
                }
                (Some("sleep"), Some(ms), _) => {
                    let ms: u64 = ms.parse().unwrap_or(0);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    json(serde_json::json!({"slept": ms}))
                }
                (Some("garbage"), ..) => (200, "this is not json".to_string()),
                (Some("fail"), ..) => (500, "failing\n".to_string()),
                _ => (200, String::new()),
            }
        }
        _ => (400, "no frame\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    if let Some(first) = offered.split(',').map(str::trim).find(|p| !p.is_empty()) {
        if frame == "open" {
            resp.headers_mut()
                .insert("sec-websocket-protocol", first.parse().unwrap());
        }
    }
    Ok(resp)
}
