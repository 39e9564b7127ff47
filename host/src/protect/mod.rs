//! Edge protection: what a request must be before Kavro routes it.
//!
//! Pingora's HTTP/1.1 parser already refuses much of what RFC 9112 forbids
//! (obsolete line folding, whitespace before a colon, NUL and bare CR,
//! several differing `Content-Length`s, several `Host`s, a `Host` that
//! differs from an absolute-form target, a `Transfer-Encoding` whose last
//! coding is not `chunked`), and Kavro's patch of it (vendor/pingora-core)
//! a raw space or control byte in the target, which it used to re-encode,
//! and one in a chunk extension. [`check`] refuses the rest, before routes
//! and plugins: the framings an intermediary must not guess at, which would
//! let a client smuggle a second request past Kavro to the upstream, and
//! the sizes over the configured limits.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderMap, Version};
use pingora_http::RequestHeader;

use crate::actions::Produced;

pub mod connections;
pub mod forwarded;
pub mod proxy_protocol;

/// How long and how much a client may take (`[server]` keys of the same
/// names, documented in docs/config.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// A request head must arrive within it (read at start).
    pub header_timeout: std::time::Duration,
    /// The longest wait for the next piece of a request body: over it, 408.
    pub body_timeout: std::time::Duration,
    /// An upgraded connection (WebSocket) with nothing read from one side
    /// for this long is closed.
    pub websocket_idle_timeout: std::time::Duration,
    /// An idle kept-alive connection is closed after it; 0: no keep-alive.
    pub keepalive_timeout_s: u64,
    /// HTTP/1 requests on one connection before it is closed (read at start).
    pub max_requests_per_connection: u32,
    /// Open connections from one address; `None`: no limit.
    pub max_connections_per_ip: Option<u32>,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(60),
            websocket_idle_timeout: std::time::Duration::from_secs(300),
            keepalive_timeout_s: 60,
            // nginx's keepalive_requests.
            max_requests_per_connection: 1000,
            max_connections_per_ip: None,
        }
    }
}

/// Sizes a request head may have (`[server]` keys of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Method, target and version, without the line end: over it, 414.
    pub max_request_line_bytes: usize,
    /// Every header's name and value, with `: ` and the line end: over it, 431.
    pub max_header_bytes: usize,
    /// Header fields: over it, 431.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        // nginx's large_client_header_buffers (4 × 8k) holds about as much.
        HeadLimits {
            max_request_line_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
        }
    }
}

/// Why a request is refused: its status and the reason sent in the body.
/// The connection is closed after it, since its framing cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub reason: Cow<'static, str>,
}

impl Refused {
    /// A body declared larger than the route accepts.
    pub fn body_over(max: u64) -> Self {
        Refused {
            status: 413,
            reason: format!("the request body is larger than this route accepts ({max} bytes)")
                .into(),
        }
    }

    /// The answer: the status, and the reason in a line of text.
    pub fn answer(&self) -> Produced {
        let canonical = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let body = format!("{} {canonical}: {}\n", self.status, self.reason);
        Produced::text(self.status, body)
    }
}

/// What the checks learnt of a request that passed them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The body's declared length.
    pub content_length: Option<u64>,
    /// The client waits for `100 Continue` before sending its body.
    pub expects_continue: bool,
}

fn refuse(status: u16, reason: &'static str) -> Result<Head, Refused> {
    Err(Refused {
        status,
        reason: Cow::Borrowed(reason),
    })
}

/// How the request arrived.
pub enum Wire<F: FnOnce() -> Bytes> {
    /// HTTP/1.x, with a way to the head's bytes as received, read only when
    /// it has a `Transfer-Encoding`: Pingora drops a `Content-Length` sent
    /// beside one from the parsed head.
    H1(F),
    /// Framing is the stream's, and HTTP/2 forbids `Transfer-Encoding`
    /// itself, so only the sizes apply.
    H2,
}

/// What one pass over the header fields finds.
#[derive(Default)]
struct Fields {
    bytes: usize,
    hosts: usize,
    content_lengths: usize,
    transfer_encodings: usize,
    content_length: Option<u64>,
    expect_continue: bool,
    /// An `Expect` other than `100-continue`.
    expect_other: bool,
    /// A `Content-Length` that is not digits alone, or a
    /// `Transfer-Encoding` that is not `chunked`.
    malformed: Option<&'static str>,
}

fn fields(headers: &HeaderMap) -> Fields {
    let mut f = Fields::default();
    // Standard names compare as one integer: no hashing per request.
    for (name, value) in headers {
        f.bytes += name.as_str().len() + value.len() + 4;
        if name == header::HOST {
            f.hosts += 1;
        } else if name == header::CONTENT_LENGTH {
            f.content_lengths += 1;
            let v = value.as_bytes();
            // Digits alone, as a number that fits.
            f.content_length = std::str::from_utf8(v)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse().ok());
            if f.content_length.is_none() {
                f.malformed = Some("Content-Length must be digits alone (RFC 9110 §8.6)");
            }
        } else if name == header::TRANSFER_ENCODING {
            f.transfer_encodings += 1;
            if !value.as_bytes().eq_ignore_ascii_case(b"chunked") {
                f.malformed = Some(
                    "Transfer-Encoding must be chunked, once (RFC 9112 §6.1); other codings are not accepted",
                );
            }
        } else if name == header::EXPECT {
            if value.as_bytes().eq_ignore_ascii_case(b"100-continue") {
                f.expect_continue = true;
            } else {
                f.expect_other = true;
            }
        }
    }
    f
}

/// Checks a parsed request head.
pub fn check<F: FnOnce() -> Bytes>(
    req: &RequestHeader,
    wire: Wire<F>,
    limits: &HeadLimits,
) -> Result<Head, Refused> {
    let line = req.method.as_str().len() + 1 + req.raw_path().len() + " HTTP/1.1".len();
    if line > limits.max_request_line_bytes {
        return refuse(414, "the request line is longer than this server accepts");
    }
    if req.headers.len() > limits.max_headers {
        return refuse(
            431,
            "the request has more header fields than this server accepts",
        );
    }
    let f = fields(&req.headers);
    if f.bytes > limits.max_header_bytes {
        return refuse(
            431,
            "the request's header fields are larger than this server accepts",
        );
    }
    // An HTTP/1.0 client may not know Expect; RFC 9110 §10.1.1 lets it be ignored.
    let http_1_0 = req.version <= Version::HTTP_10;
    if f.expect_other && !http_1_0 {
        return refuse(
            417,
            "the only expectation this server meets is Expect: 100-continue",
        );
    }
    let head = Head {
        content_length: f.content_length,
        expects_continue: f.expect_continue && !http_1_0,
    };
    let Wire::H1(raw_head) = wire else {
        return Ok(head);
    };
    if req.version == Version::HTTP_11 && f.hosts == 0 {
        return refuse(
            400,
            "an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)",
        );
    }
    // One unambiguous body framing (RFC 9112 §6): a single Content-Length
    // of digits alone, or a single `Transfer-Encoding: chunked`, never both.
    let both = "Content-Length and Transfer-Encoding together (RFC 9112 §6.1)";
    if f.transfer_encodings > 0 && (f.content_lengths > 0 || sent_content_length(&raw_head())) {
        return refuse(400, both);
    }
    if let Some(reason) = f.malformed {
        return refuse(400, reason);
    }
    if f.transfer_encodings > 1 {
        return refuse(
            400,
            "Transfer-Encoding must be chunked, once (RFC 9112 §6.1)",
        );
    }
    if f.content_lengths > 1 {
        return refuse(400, "more than one Content-Length (RFC 9110 §8.6)");
    }
    Ok(head)
}

/// Whether a head as received has a `Content-Length` line.
fn sent_content_length(raw_head: &[u8]) -> bool {
    const NAME: &[u8] = b"content-length:";
    raw_head
        .split(|&b| b == b'\n')
        .skip(1)
        .any(|line| line.len() >= NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(version: Version, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", path.as_bytes(), None).unwrap();
        req.set_version(version);
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    fn h1() -> Wire<fn() -> Bytes> {
        Wire::H1(Bytes::new)
    }

    fn h2() -> Wire<fn() -> Bytes> {
        Wire::H2
    }

    fn checked(headers: &[(&str, &str)]) -> Result<Head, Refused> {
        check(
            &head(Version::HTTP_11, "/", headers),
            h1(),
            &HeadLimits::default(),
        )
    }

    #[test]
    fn content_length_beside_transfer_encoding_is_found_in_the_raw_head() {
        // What Pingora leaves of such a head: the Content-Length is gone.
        let req = head(
            Version::HTTP_11,
            "/",
            &[("host", "a"), ("transfer-encoding", "chunked")],
        );
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nCONTENT-LENGTH: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        let refused = check(
            &req,
            Wire::H1(|| Bytes::from_static(raw)),
            &HeadLimits::default(),
        );
        assert_eq!(refused.unwrap_err().status, 400);
        let raw =
            b"POST /content-length: HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let passed = check(
            &req,
            Wire::H1(|| Bytes::from_static(raw)),
            &HeadLimits::default(),
        );
        assert!(passed.is_ok());
    }

    #[test]
    fn one_framing_passes() {
        assert_eq!(checked(&[("host", "a")]), Ok(Head::default()));
        let five = checked(&[("host", "a"), ("content-length", "5")]).unwrap();
        assert_eq!(five.content_length, Some(5));
        assert!(checked(&[("host", "a"), ("transfer-encoding", "Chunked")]).is_ok());
    }

    #[test]
    fn only_100_continue_is_expected() {
        let continued = checked(&[("host", "a"), ("expect", "100-Continue")]).unwrap();
        assert!(continued.expects_continue);
        let refused = checked(&[("host", "a"), ("expect", "200-ok")]).unwrap_err();
        assert_eq!(refused.status, 417);
        // HTTP/1.0 predates Expect: ignored, not refused, and no 100 is sent.
        let old = head(Version::HTTP_10, "/", &[("expect", "100-continue")]);
        assert_eq!(
            check(&old, h1(), &HeadLimits::default()),
            Ok(Head::default())
        );
        let old = head(Version::HTTP_10, "/", &[("expect", "200-ok")]);
        assert!(check(&old, h1(), &HeadLimits::default()).is_ok());
    }

    #[test]
    fn ambiguous_framings_are_refused() {
        for headers in [
            &[("content-length", "5"), ("transfer-encoding", "chunked")][..],
            &[("content-length", "5"), ("content-length", "5")],
            &[("content-length", "5, 5")],
            &[("content-length", "")],
            &[("content-length", " 5")],
            &[("content-length", "99999999999999999999999")],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            &[("transfer-encoding", "gzip, chunked")],
            &[("transfer-encoding", "identity")],
        ] {
            let mut all = vec![("host", "a")];
            all.extend_from_slice(headers);
            let refused = checked(&all).unwrap_err();
            assert_eq!(refused.status, 400, "{headers:?}");
        }
    }

    #[test]
    fn host_is_required_in_http_1_1_only() {
        assert_eq!(checked(&[]).unwrap_err().status, 400);
        let old = head(Version::HTTP_10, "/", &[]);
        assert!(check(&old, h1(), &HeadLimits::default()).is_ok());
        let two = head(Version::HTTP_2, "/", &[]);
        assert!(check(&two, h2(), &HeadLimits::default()).is_ok());
    }

    #[test]
    fn sizes_over_the_limits_are_refused() {
        let limits = HeadLimits {
            max_request_line_bytes: 64,
            max_header_bytes: 100,
            max_headers: 3,
        };
        let long = format!("/{}", "a".repeat(64));
        let req = head(Version::HTTP_11, &long, &[("host", "a")]);
        assert_eq!(check(&req, h1(), &limits).unwrap_err().status, 414);
        let many = [("host", "a"), ("a", "1"), ("b", "2"), ("c", "3")];
        let req = head(Version::HTTP_11, "/", &many);
        assert_eq!(check(&req, h1(), &limits).unwrap_err().status, 431);
        let big = "v".repeat(100);
        let req = head(Version::HTTP_11, "/", &[("host", "a"), ("x", &big)]);
        assert_eq!(check(&req, h2(), &limits).unwrap_err().status, 431);
    }
}
