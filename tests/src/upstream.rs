//! A real HTTP/1.1 upstream on loopback that echoes what it received.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

impl Upstream {
    /// Serves: `/slow?ms=N` answers after N ms; everything else answers a
    /// JSON echo of the request (method, uri, headers, body) with
    /// `x-upstream: <name>`. Query parameters `cc`, `vary` and `cookie` set
    /// the response's Cache-Control, Vary and Set-Cookie (`%3D`, `%2C` and
    /// `%20` decoded); `status` its status.
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
        let name = name.to_string();
        let counter = hits.clone();
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let name = name.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        handle(name.clone(), req)
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
            _rt: rt,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
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
