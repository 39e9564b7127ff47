//! The `proxy` action's header rules: what the request going up carries
//! (X-Forwarded-*, no hop-by-hop headers) and what the response coming
//! back sheds. Targets and their choice are `crate::upstream`'s.

use http::header::{self, HeaderName};
use http::HeaderValue;
use pingora_http::{RequestHeader, ResponseHeader};

// For lookups and removals; an insert takes the `&'static str`, which
// Pingora keeps as the header's case without copying it.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// An IP address as a header value. IPv4, the usual case, is written
/// digit by digit: `Display` goes through the formatting machinery, which
/// costs more than the rest of the X-Forwarded-* headers together.
fn ip_value(ip: std::net::IpAddr) -> HeaderValue {
    let std::net::IpAddr::V4(v4) = ip else {
        return HeaderValue::from_str(&ip.to_string()).expect("an IP address is a valid value");
    };
    let mut buf = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = match octet {
            100.. => 0,
            10.. => 1,
            _ => 2,
        };
        for d in &digits[skip..] {
            buf[len] = b'0' + d;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&buf[..len]).expect("digits and dots are a valid value")
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

/// The tokens listed in `Connection`: options such as `keep-alive` and
/// `close`, and the names of headers that are hop-by-hop too.
fn connection_tokens(headers: &http::HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Headers listed in `Connection` that are present. Looked up before they
/// are parsed: the usual `keep-alive` or `close` names no header and costs
/// no allocation.
fn connection_listed(headers: &http::HeaderMap) -> Vec<HeaderName> {
    connection_tokens(headers)
        .filter(|t| !t.is_empty() && headers.contains_key(*t))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect()
}

fn is_upgrade(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// A WebSocket handshake: `Connection: upgrade` and `Upgrade: websocket`.
pub fn is_websocket_upgrade(headers: &http::HeaderMap) -> bool {
    is_upgrade(headers)
        && headers
            .get_all(header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
}

/// Whether any hop-by-hop header is present; usually none is, and then one
/// pass over the names saves every removal below.
fn has_hop_by_hop(headers: &http::HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| HOP_BY_HOP.contains(k) || k == KEEP_ALIVE || k == PROXY_CONNECTION)
}

/// What X-Forwarded-For says upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedFor {
    /// The client's IP, replacing whatever the client sent.
    Client(std::net::IpAddr),
    /// The trusted proxy's IP, after the list it sent.
    Append(std::net::IpAddr),
    /// No client address (a Unix socket): no header.
    Nobody,
}

/// Prepares the upstream request: strips hop-by-hop headers (an Upgrade
/// handshake keeps its two), and sets X-Forwarded-For, -Proto and -Host.
pub fn prepare_upstream_request(
    req: &mut RequestHeader,
    forwarded: ForwardedFor,
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
    match forwarded {
        ForwardedFor::Client(ip) => {
            req.insert_parsed_header(&X_FORWARDED_FOR, "x-forwarded-for", ip_value(ip));
        }
        ForwardedFor::Append(proxy) => {
            let mut list: Vec<u8> = Vec::new();
            for v in req.headers.get_all(&X_FORWARDED_FOR) {
                list.extend_from_slice(v.as_bytes());
                list.extend_from_slice(b", ");
            }
            list.extend_from_slice(proxy.to_string().as_bytes());
            let value = HeaderValue::from_bytes(&list).unwrap_or_else(|_| ip_value(proxy));
            req.insert_parsed_header(&X_FORWARDED_FOR, "x-forwarded-for", value);
        }
        ForwardedFor::Nobody => {
            req.remove_header(&X_FORWARDED_FOR);
        }
    }
    req.insert_parsed_header(
        &X_FORWARDED_PROTO,
        "x-forwarded-proto",
        HeaderValue::from_static(scheme),
    );
    match host {
        Some(h) => {
            req.insert_parsed_header(&X_FORWARDED_HOST, "x-forwarded-host", h);
        }
        None => {
            req.remove_header(&X_FORWARDED_HOST);
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
        .filter(|n| !spared(n))
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
    fn ip_values_read_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.1.20.100",
            "127.0.0.1",
            "::1",
            "2001:db8::7",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(ip_value(ip), ip.to_string().as_str());
        }
    }

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
        let client = ForwardedFor::Client("10.0.0.1".parse().unwrap());
        prepare_upstream_request(&mut req, client, "http");
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
    fn a_trusted_proxy_list_is_kept_and_appended_to() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.append_header("x-forwarded-for", "1.2.3.4").unwrap();
        req.append_header("x-forwarded-for", "10.0.0.9").unwrap();
        let proxy = ForwardedFor::Append("10.0.0.1".parse().unwrap());
        prepare_upstream_request(&mut req, proxy, "http");
        let h = &req.headers;
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.9, 10.0.0.1");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
    }

    #[test]
    fn websocket_upgrade_is_kept() {
        let mut req = RequestHeader::build("GET", b"/ws", None).unwrap();
        req.insert_header("connection", "Upgrade").unwrap();
        req.insert_header("upgrade", "websocket").unwrap();
        let client = ForwardedFor::Client("1.2.3.4".parse().unwrap());
        prepare_upstream_request(&mut req, client, "http");
        assert_eq!(req.headers["upgrade"], "websocket");
        assert_eq!(req.headers["connection"], "upgrade");
    }
}
