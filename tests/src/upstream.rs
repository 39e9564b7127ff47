//! A real HTTP/1.1 upstream on loopback that echoes what it received.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

/// What the upstream answers with: a whole body, or one cut off.
type Reply = Response<BoxBody<Bytes, std::io::Error>>;

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
    /// Whether every request is answered as `/partial` is.
    partial: AtomicBool,
    /// Whether every connection is closed, once its request arrived,
    /// without an answer.
    hang_up: AtomicBool,
    /// The status every request is answered with (0: none, answer normally).
    fail: AtomicU16,
    /// Requests that arrived with If-None-Match or If-Modified-Since.
    conditionals: AtomicUsize,
    /// The If-None-Match of the last request that had one.
    last_if_none_match: Mutex<Option<String>>,
}

impl Knobs {
    /// Counts a conditional request and keeps its If-None-Match.
    fn note_conditional(&self, req: &Request<Incoming>) {
        let inm = req
            .headers()
            .get(hyper::header::IF_NONE_MATCH)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if inm.is_some() || req.headers().contains_key(hyper::header::IF_MODIFIED_SINCE) {
            self.conditionals.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(v) = inm {
            *self.last_if_none_match.lock().unwrap() = Some(v);
        }
    }
}

impl Upstream {
    /// Serves: `/slow?ms=N` answers after N ms; everything else answers a
    /// JSON echo of the request (method, uri, headers, body) with
    /// `x-upstream: <name>`. Query parameters (`%3D`, `%2C` and `%20`
    /// decoded) shape the response:
    /// - `cc`, `vary`, `cookie`, `age`, `cdn`: Cache-Control, Vary,
    ///   Set-Cookie, Age, CDN-Cache-Control; `status`: its status;
    /// - `location`, `clocation`: Location, Content-Location; `expires`:
    ///   Expires, as given; `date=N` (unix seconds): Date, as an HTTP date;
    /// - `etag=X`: `ETag: "X"`; a request whose If-None-Match lists `"X"`
    ///   (or is `*`) is answered 304 without a body;
    /// - `lm=N` (unix seconds): Last-Modified; a request without
    ///   If-None-Match whose If-Modified-Since is at or after N is
    ///   answered 304;
    /// - `etag304=Y`: any conditional request (If-None-Match or
    ///   If-Modified-Since) is answered 304 with `ETag: "Y"`, matching or
    ///   not;
    /// - `ct`, `ce`: Content-Type (else application/json),
    ///   Content-Encoding; `pad=N`: the echo gets a `pad` field of N
    ///   `<p>padding</p>`.
    ///
    /// A 304 carries the same headers from the parameters, and
    /// `x-upstream`. Conditional requests count in `conditionals()`.
    /// `/ready` answers 200, or 503 after `set_ready(false)`, and counts
    /// in `checks()`, not `hits()`. `/partial` answers 200 with a
    /// Content-Length of 1000, sends 100 bytes of the body and closes the
    /// connection 100 ms later (every request after `set_partial(true)`).
    /// Every request waits the delay of `set_delay` first. After
    /// `set_hang_up(true)` every connection is closed without an answer
    /// once a request arrived on it; after `set_fail(Some(status))` every
    /// request but `/ready` is answered `status` with `failing\n`.
    pub fn start(name: &str) -> Upstream {
        Upstream::start_at(name, "127.0.0.1:0".parse().unwrap())
    }

    /// The same, on `addr` (a target brought back where it was).
    pub fn start_at(name: &str, addr: SocketAddr) -> Upstream {
        let (rt, listener) = crate::server_runtime(&addr.to_string());
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
                if knobs.hang_up.load(Ordering::Relaxed) {
                    tokio::spawn(hang_up(stream, counter));
                    continue;
                }
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (name, counter, knobs) = (name.clone(), counter.clone(), knobs.clone());
                        async move {
                            let check = req.uri().path() == "/ready";
                            if !check {
                                // Counted on arrival, as before any delay.
                                counter.fetch_add(1, Ordering::Relaxed);
                                knobs.note_conditional(&req);
                            }
                            if knobs.hang_up.load(Ordering::Relaxed) {
                                // A kept-alive connection opened before
                                // `set_hang_up(true)` closes as a new one
                                // does: an error from the service makes
                                // hyper drop it without an answer.
                                return Err(std::io::Error::other("hung up"));
                            }
                            let delay = knobs.delay_ms.load(Ordering::Relaxed);
                            if delay > 0 {
                                tokio::time::sleep(Duration::from_millis(delay)).await;
                            }
                            if check {
                                return Ok(ready(&knobs, &req));
                            }
                            let fail = knobs.fail.load(Ordering::Relaxed);
                            if fail != 0 {
                                return Ok(failing(fail, &name));
                            }
                            if req.uri().path() == "/partial"
                                || knobs.partial.load(Ordering::Relaxed)
                            {
                                return Ok(partial(&name));
                            }
                            match handle(name, req).await {
                                Ok(reply) => Ok(reply),
                                Err(never) => match never {},
                            }
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

    /// Whether every request is answered as `/partial` is: headers and
    /// the start of the body, then the connection closes.
    pub fn set_partial(&self, partial: bool) {
        self.knobs.partial.store(partial, Ordering::Relaxed);
    }

    /// Whether connections accepted from now on are closed without an
    /// answer once their request arrived (counted in `hits`); so is a
    /// kept-alive connection, open before, when its next request arrives.
    pub fn set_hang_up(&self, hang_up: bool) {
        self.knobs.hang_up.store(hang_up, Ordering::Relaxed);
    }

    /// While `Some(status)`, every request but `/ready` is counted in
    /// `hits` and answered `status` with the body `failing\n`, without
    /// cache headers; `None` answers normally again.
    pub fn set_fail(&self, status: Option<u16>) {
        self.knobs
            .fail
            .store(status.unwrap_or(0), Ordering::Relaxed);
    }

    /// Requests (not `/ready`) that arrived with If-None-Match or
    /// If-Modified-Since.
    pub fn conditionals(&self) -> usize {
        self.knobs.conditionals.load(Ordering::Relaxed)
    }

    /// The If-None-Match of the last request that had one.
    pub fn last_if_none_match(&self) -> Option<String> {
        self.knobs.last_if_none_match.lock().unwrap().clone()
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
fn ready(knobs: &Knobs, req: &Request<Incoming>) -> Reply {
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
        .body(whole(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// The answer while `set_fail` holds a status.
fn failing(status: u16, name: &str) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .header("x-upstream", name)
        .body(whole(Bytes::from_static(b"failing\n")))
        .unwrap()
}

fn whole(body: Bytes) -> BoxBody<Bytes, std::io::Error> {
    Full::new(body).map_err(|never| match never {}).boxed()
}

/// Reads what the client sends until a request's head has arrived (or the
/// client stops), counts it, and closes the connection without a word.
async fn hang_up(mut stream: tokio::net::TcpStream, counter: Arc<AtomicUsize>) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    counter.fetch_add(1, Ordering::Relaxed);
}

/// 200 with a Content-Length of 1000, of which 100 bytes are sent before
/// the body fails and hyper closes the connection.
fn partial(name: &str) -> Reply {
    let body = CutOff {
        sent: false,
        pause: Box::pin(tokio::time::sleep(Duration::from_millis(100))),
    };
    Response::builder()
        .header("content-type", "text/plain")
        .header("content-length", "1000")
        .header("x-upstream", name)
        .body(BoxBody::new(body))
        .unwrap()
}

/// A body that yields 100 bytes, waits, and fails.
struct CutOff {
    sent: bool,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl Body for CutOff {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if !self.sent {
            self.sent = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; 100])))));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::other("cut off")))),
        }
    }
}

async fn handle(name: String, req: Request<Incoming>) -> Result<Reply, Infallible> {
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
    let unchanged = not_modified(&query, &req);
    let etag = match &unchanged {
        Some(NotModified::Mismatched(tag)) => Some(tag.clone()),
        _ => query.get("etag").map(|e| format!("\"{e}\"")),
    };
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
    let mut echo = echo;
    if let Some(n) = query.get("pad").and_then(|n| n.parse::<usize>().ok()) {
        echo["pad"] = "<p>padding</p>".repeat(n).into();
    }
    let body = serde_json::to_vec(&echo).unwrap();
    let mut resp = Response::builder();
    for (param, header) in [
        ("cc", "cache-control"),
        ("vary", "vary"),
        ("cookie", "set-cookie"),
        ("age", "age"),
        ("cdn", "cdn-cache-control"),
        ("location", "location"),
        ("clocation", "content-location"),
        ("expires", "expires"),
        ("ce", "content-encoding"),
    ] {
        if let Some(v) = query.get(param) {
            resp = resp.header(header, v.as_str());
        }
    }
    if let Some(tag) = &etag {
        resp = resp.header("etag", tag.as_str());
    }
    for (param, header) in [("lm", "last-modified"), ("date", "date")] {
        if let Some(secs) = query.get(param).and_then(|n| n.parse::<u64>().ok()) {
            resp = resp.header(header, http_date(secs));
        }
    }
    if unchanged.is_some() {
        return Ok(resp
            .status(304)
            .header("x-upstream", name)
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "secret")
            .header("keep-alive", "timeout=5")
            .body(whole(Bytes::new()))
            .unwrap());
    }
    if let Some(code) = query.get("status").and_then(|c| c.parse::<u16>().ok()) {
        resp = resp.status(code);
    }
    let content_type = query.get("ct").map_or("application/json", String::as_str);
    Ok(resp
        .header("content-type", content_type)
        .header("x-upstream", name)
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .body(whole(Bytes::from(body)))
        .unwrap())
}

/// `secs` after the Unix epoch as an HTTP date.
fn http_date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Why a request is answered 304.
enum NotModified {
    /// Its validators match the representation's (`etag`, `lm`).
    Matched,
    /// `etag304`: a 304 whatever the validators, with this (quoted) ETag.
    Mismatched(String),
}

/// Whether the request is answered 304, from the query's `etag`, `lm` and
/// `etag304` and the request's If-None-Match and If-Modified-Since.
fn not_modified(query: &BTreeMap<String, String>, req: &Request<Incoming>) -> Option<NotModified> {
    let text = |name: hyper::header::HeaderName| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let if_none_match = text(hyper::header::IF_NONE_MATCH);
    let if_modified_since = text(hyper::header::IF_MODIFIED_SINCE);
    if if_none_match.is_none() && if_modified_since.is_none() {
        return None;
    }
    if let Some(tag) = query.get("etag304") {
        return Some(NotModified::Mismatched(format!("\"{tag}\"")));
    }
    let matched = match if_none_match {
        // If-None-Match decides alone when present (RFC 9110 §13.2.2).
        Some(list) => query.get("etag").is_some_and(|tag| {
            let quoted = format!("\"{tag}\"");
            list.trim() == "*"
                || list
                    .split(',')
                    .map(str::trim)
                    .any(|t| t == quoted || t.strip_prefix("W/") == Some(quoted.as_str()))
        }),
        None => {
            let modified = query.get("lm").and_then(|n| n.parse::<u64>().ok());
            let since = if_modified_since
                .as_deref()
                .and_then(|d| httpdate::parse_http_date(d.trim()).ok());
            match (modified, since) {
                (Some(lm), Some(since)) => since >= UNIX_EPOCH + Duration::from_secs(lm),
                _ => false,
            }
        }
    };
    matched.then_some(NotModified::Matched)
}
