//! A real HTTP/1.1 upstream on loopback that echoes what it received.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub struct Upstream {
    pub addr: SocketAddr,
    /// Requests served, apart from `/ready` (see [`Upstream::checks`]).
    pub hits: Arc<AtomicUsize>,
    knobs: Arc<Knobs>,
    _rt: tokio::runtime::Runtime,
}

/// What a test may change on a running upstream, and what it counts
/// besides `hits`.
#[derive(Default)]
struct Knobs {
    /// Milliseconds every request waits before it is answered.
    delay_ms: AtomicU64,
    /// Whether `/ready` answers 503.
    not_ready: AtomicBool,
    /// Requests for `/ready`.
    checks: AtomicUsize,
    /// The User-Agent of the last `/ready` request.
    check_agent: Mutex<Option<String>>,
}

impl Upstream {
    /// Serves: `/slow?ms=N` answers after N ms; everything else answers a
    /// JSON echo of the request (method, uri, headers, body) with
    /// `x-upstream: <name>`. Query parameters `cc`, `vary` and `cookie` set
    /// the response's Cache-Control, Vary and Set-Cookie (`%3D`, `%2C` and
    /// `%20` decoded); `status` its status. `/ready` answers 200, or 503
    /// after `set_ready(false)`, and counts in `checks()`, not `hits()`.
    /// Every request waits the delay of `set_delay` first.
    pub fn start(name: &str) -> Upstream {
        Upstream::start_at(name, "127.0.0.1:0".parse().unwrap())
    }

    /// The same, on `addr` (a target brought back where it was).
    pub fn start_at(name: &str, addr: SocketAddr) -> Upstream {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind upstream");
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let knobs = Arc::new(Knobs::default());
        let name = name.to_string();
        let counter = hits.clone();
        let shared = knobs.clone();
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let name = name.clone();
                let counter = counter.clone();
                let knobs = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (name, counter, knobs) = (name.clone(), counter.clone(), knobs.clone());
                        async move {
                            let check = req.uri().path() == "/ready";
                            if !check {
                                // Counted on arrival, as before any delay.
                                counter.fetch_add(1, Ordering::Relaxed);
                            }
                            let delay = knobs.delay_ms.load(Ordering::Relaxed);
                            if delay > 0 {
                                tokio::time::sleep(Duration::from_millis(delay)).await;
                            }
                            if check {
                                return Ok(ready(&knobs, &req));
                            }
                            handle(name, req).await
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            hits,
            knobs,
            _rt: rt,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Makes every request from now on wait `ms` before it is answered
    /// (0: none), so one server of several is the slow one.
    pub fn set_delay(&self, ms: u64) {
        self.knobs.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether `/ready` answers 200 (`true`, the default) or 503.
    pub fn set_ready(&self, ready: bool) {
        self.knobs.not_ready.store(!ready, Ordering::Relaxed);
    }

    /// Requests for `/ready` (health checks) so far.
    pub fn checks(&self) -> usize {
        self.knobs.checks.load(Ordering::Relaxed)
    }

    /// The User-Agent of the last `/ready` request, if there was one.
    pub fn check_agent(&self) -> Option<String> {
        self.knobs.check_agent.lock().unwrap().clone()
    }
}

/// The answer to `/ready`: 200, or 503 while not ready.
fn ready(knobs: &Knobs, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    knobs.checks.fetch_add(1, Ordering::Relaxed);
    let agent = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    *knobs.check_agent.lock().unwrap() = agent;
    let (status, body) = if knobs.not_ready.load(Ordering::Relaxed) {
        (503, "not ready\n")
    } else {
        (200, "ready\n")
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn handle(name: String, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v
                .replace("%3D", "=")
                .replace("%2C", ",")
                .replace("%20", " ");
            (k.to_string(), v)
        })
        .collect();
    if req.uri().path() == "/slow" {
        let ms: u64 = query.get("ms").and_then(|v| v.parse().ok()).unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let echo = serde_json::json!({
        "upstream": name,
        "method": method,
        "uri": uri,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let body = serde_json::to_vec(&echo).unwrap();
    let mut resp = Response::builder();
    for (param, header) in [
        ("cc", "cache-control"),
        ("vary", "vary"),
        ("cookie", "set-cookie"),
    ] {
        if let Some(v) = query.get(param) {
            resp = resp.header(header, v.as_str());
        }
    }
    if let Some(code) = query.get("status").and_then(|c| c.parse::<u16>().ok()) {
        resp = resp.status(code);
    }
    Ok(resp
        .header("content-type", "application/json")
        .header("x-upstream", name)
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .body(Full::new(Bytes::from(body)))
        .unwrap())
}
