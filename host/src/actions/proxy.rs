//! The `proxy` action: upstreams with round-robin targets, and the header
//! rules for the request going up and the response coming back.

use std::fmt;
use std::time::Duration;

use http::header::{self, HeaderName};
use http::HeaderValue;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_load_balancing::{selection::RoundRobin, LoadBalancer};

pub struct Upstream {
    pub name: String,
    targets: Vec<String>,
    lb: LoadBalancer<RoundRobin>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("targets", &self.targets)
            .finish()
    }
}

impl Upstream {
    pub fn new(
        name: &str,
        targets: &[String],
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> std::io::Result<Upstream> {
        Ok(Upstream {
            name: name.to_string(),
            targets: targets.to_vec(),
            lb: LoadBalancer::try_from_iter(targets.iter().map(String::as_str))?,
            connect_timeout,
            read_timeout,
        })
    }

    /// The next target's address, round robin.
    pub fn next_addr(&self) -> Option<String> {
        Some(self.lb.select(b"", 256)?.addr.to_string())
    }

    /// The next target, round robin.
    pub fn peer(&self) -> Option<Box<HttpPeer>> {
        let backend = self.lb.select(b"", 256)?;
        let mut peer = HttpPeer::new(backend.addr, false, String::new());
        peer.options.connection_timeout = Some(self.connect_timeout);
        // Writes to an upstream that stops reading are bounded by the read
        // timeout of the response that never comes; no timer per write.
        peer.options.read_timeout = Some(self.read_timeout);
        Some(Box::new(peer))
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];
const KEEP_ALIVE: &str = "keep-alive";
const PROXY_CONNECTION: &str = "proxy-connection";

/// Names listed in `Connection`, which are hop-by-hop too.
fn connection_listed(headers: &http::HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

fn is_upgrade(headers: &http::HeaderMap) -> bool {
    connection_listed(headers).contains(&header::UPGRADE) && headers.contains_key(header::UPGRADE)
}

/// Whether any hop-by-hop header is present; usually none is, and then one
/// pass over the names saves every removal below.
fn has_hop_by_hop(headers: &http::HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| HOP_BY_HOP.contains(k) || k == KEEP_ALIVE || k == PROXY_CONNECTION)
}

/// Prepares the upstream request: strips hop-by-hop headers (an Upgrade
/// handshake keeps its two), and sets X-Forwarded-For to the client's IP
/// (replacing whatever the client sent), -Proto and -Host.
pub fn prepare_upstream_request(
    req: &mut RequestHeader,
    client_ip: Option<std::net::IpAddr>,
    scheme: &'static str,
) {
    if has_hop_by_hop(&req.headers) {
        strip_request_hop_by_hop(req);
    }
    let host = req
        .headers
        .get(header::HOST)
        .cloned()
        .or_else(|| req.uri.authority().and_then(|a| a.as_str().parse().ok()));
    match client_ip {
        Some(ip) => {
            let _ = req.insert_header("x-forwarded-for", ip.to_string());
        }
        None => {
            req.remove_header("x-forwarded-for");
        }
    }
    let _ = req.insert_header("x-forwarded-proto", HeaderValue::from_static(scheme));
    match host {
        Some(h) => {
            let _ = req.insert_header("x-forwarded-host", h);
        }
        None => {
            req.remove_header("x-forwarded-host");
        }
    }
}

/// The hop-by-hop headers present in `headers`: those `Connection` lists
/// and the fixed set. `keep_upgrade` spares an upgrade handshake's
/// `Connection` and `Upgrade`. Only names that are there are returned, so
/// the caller removes nothing twice and looks up nothing absent.
fn hop_by_hop_present(headers: &http::HeaderMap, keep_upgrade: bool) -> Vec<HeaderName> {
    let spared = |n: &HeaderName| keep_upgrade && (n == header::CONNECTION || n == header::UPGRADE);
    let mut names: Vec<HeaderName> = connection_listed(headers)
        .into_iter()
        .filter(|n| !spared(n) && headers.contains_key(n))
        .collect();
    for n in headers.keys() {
        let fixed = HOP_BY_HOP.contains(n) || n == KEEP_ALIVE || n == PROXY_CONNECTION;
        if fixed && !spared(n) && !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

fn strip_request_hop_by_hop(req: &mut RequestHeader) {
    let upgrade = is_upgrade(&req.headers);
    for name in hop_by_hop_present(&req.headers, upgrade) {
        req.remove_header(&name);
    }
    if upgrade {
        let _ = req.insert_header(header::CONNECTION, "upgrade");
    }
}

/// Strips hop-by-hop headers from an upstream response (a 101 keeps its upgrade).
pub fn clean_upstream_response(resp: &mut ResponseHeader) {
    if !has_hop_by_hop(&resp.headers) {
        return;
    }
    let switching = resp.status == http::StatusCode::SWITCHING_PROTOCOLS;
    for name in hop_by_hop_present(&resp.headers, switching) {
        resp.remove_header(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_replace_client_values_and_hop_by_hop_go() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("host", "example.com").unwrap();
        req.insert_header("x-forwarded-for", "6.6.6.6").unwrap();
        req.insert_header("connection", "keep-alive, x-secret")
            .unwrap();
        req.insert_header("x-secret", "1").unwrap();
        req.insert_header("keep-alive", "timeout=5").unwrap();
        req.insert_header("te", "trailers").unwrap();
        prepare_upstream_request(&mut req, "10.0.0.1".parse().ok(), "http");
        let h = &req.headers;
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        for gone in ["connection", "x-secret", "keep-alive", "te"] {
            assert!(!h.contains_key(gone), "{gone} kept");
        }
    }

    #[test]
    fn websocket_upgrade_is_kept() {
        let mut req = RequestHeader::build("GET", b"/ws", None).unwrap();
        req.insert_header("connection", "Upgrade").unwrap();
        req.insert_header("upgrade", "websocket").unwrap();
        prepare_upstream_request(&mut req, "1.2.3.4".parse().ok(), "http");
        assert_eq!(req.headers["upgrade"], "websocket");
        assert_eq!(req.headers["connection"], "upgrade");
    }
}
