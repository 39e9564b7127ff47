//! HTTP/1.1 as strict as RFC 9112 asks of an intermediary, byte by byte
//! over raw sockets: every head that could frame a request two ways, or that
//! the grammar forbids, is answered 400 (414, 431 for sizes) and its
//! connection closed, before routes and plugins, and nothing of it reaches
//! the upstream. Well-formed requests, chunked ones included, still pass.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kavro_e2e::upstream::Upstream;
use kavro_e2e::Host;

/// Sends `bytes` on a new connection; the status code of the answer and
/// whether the host closed the connection after it (within 2 s).
fn send(addr: SocketAddr, bytes: &[u8]) -> (u16, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let line = String::from_utf8_lossy(&got);
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {line:?} for {:?}", show(bytes)));
    (status, closed)
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned()
}

fn host(upstream: &Upstream, server: &str) -> Host {
    let config = format!(
        "[server]\n{server}\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\nname = \"proxied\"\npath = \"/proxy/*\"\nproxy = \"app\"\n\
         [[routes]]\nname = \"answer\"\npath = \"/*\"\nrespond = {{ body = \"ok\" }}\n",
        upstream.addr
    );
    Host::builder().config(&config).start()
}

/// Every case on the proxied route and on the respond route: refused with
/// `status`, the connection closed, the upstream never asked.
fn refused(host: &Host, upstream: &Upstream, cases: &[(&str, Vec<u8>, u16)]) {
    for (name, bytes, status) in cases {
        for path in ["/proxy/x", "/r"] {
            let bytes = String::from_utf8_lossy(bytes).replace("{path}", path);
            let before = upstream.hits();
            let (got, closed) = send(host.addr, bytes.as_bytes());
            assert_eq!(
                got,
                *status,
                "{name} on {path}: {:?}",
                show(bytes.as_bytes())
            );
            assert!(closed, "{name} on {path}: the connection must be closed");
            assert_eq!(
                upstream.hits(),
                before,
                "{name} on {path} reached the upstream"
            );
        }
    }
}

#[test]
fn ambiguous_framing_is_refused_and_the_connection_closed() {
    let upstream = Upstream::start("app");
    let host = host(&upstream, "");
    let post = |headers: &str, body: &str| {
        format!("POST {{path}} HTTP/1.1\r\nHost: a\r\n{headers}\r\n{body}").into_bytes()
    };
    refused(
        &host,
        &upstream,
        &[
            // RFC 9112 §6.1: a request smuggled in the body of another.
            (
                "Content-Length with Transfer-Encoding",
                post(
                    "Content-Length: 30\r\nTransfer-Encoding: chunked\r\n",
                    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
                ),
                400,
            ),
            // RFC 9110 §8.6
            (
                "two equal Content-Lengths",
                post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
                400,
            ),
            (
                "two Content-Lengths that differ",
                post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
                400,
            ),
            (
                "a Content-Length list",
                post("Content-Length: 5, 5\r\n", "hello"),
                400,
            ),
            (
                "a signed Content-Length",
                post("Content-Length: +5\r\n", "hello"),
                400,
            ),
            // RFC 9112 §6.1: chunked, last and once.
            (
                "Transfer-Encoding: gzip",
                post("Transfer-Encoding: gzip\r\n", "hello"),
                400,
            ),
            (
                "chunked twice",
                post(
                    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                    "0\r\n\r\n",
                ),
                400,
            ),
            (
                "gzip after chunked",
                post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"),
                400,
            ),
        ],
    );
    // The operator sees each refusal, with the request's id and the reason.
    host.assert_logged("request refused: Content-Length and Transfer-Encoding together");
    host.assert_logged("request=");
}

/// A chunked body that breaks RFC 9112 §7.1 is refused where it is read:
/// on a proxied route, before anything of it is sent on.
#[test]
fn malformed_chunks_are_refused() {
    let upstream = Upstream::start("app");
    let host = host(&upstream, "");
    for (name, body) in [
        (
            "a chunk size that is not hex",
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        ),
        (
            "a chunk size that overflows",
            b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "a control byte in a chunk extension",
            b"5;\x01\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "a NUL in a chunk extension",
            b"5;a=\0\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunk data longer than its size",
            b"5\r\nhelloXX\r\n0\r\n\r\n",
        ),
    ] {
        let mut req =
            b"POST /proxy/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        let (status, closed) = send(host.addr, &req);
        assert_eq!(status, 400, "{name}");
        assert!(closed, "{name}: the connection must be closed");
    }
    // A well-formed extension passes.
    let req = b"POST /proxy/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                5;name=\"v a\"\r\nhello\r\n0\r\n\r\n";
    assert_eq!(send(host.addr, req).0, 200);
}

#[test]
fn heads_the_grammar_forbids_are_refused() {
    let upstream = Upstream::start("app");
    let host = host(&upstream, "");
    let get = |line_end: &str, extra: &str| {
        format!("GET {{path}} HTTP/1.1{line_end}Host: a{line_end}{extra}{line_end}").into_bytes()
    };
    refused(
        &host,
        &upstream,
        &[
            // RFC 9112 §5.2
            (
                "obsolete line folding",
                get("\r\n", "X-A: b\r\n c\r\n"),
                400,
            ),
            // RFC 9112 §5.1
            (
                "whitespace before the colon",
                get("\r\n", "X-A : b\r\n"),
                400,
            ),
            // RFC 9110 §5.5
            ("NUL in a value", get("\r\n", "X-A: b\0c\r\n"), 400),
            // RFC 9112 §2.2
            ("a bare CR", get("\r\n", "X-A: b\rc\r\n"), 400),
            // RFC 9112 §3.2
            ("two Hosts", get("\r\n", "Host: b\r\n"), 400),
            (
                "no Host in HTTP/1.1",
                b"GET {path} HTTP/1.1\r\nX-A: b\r\n\r\n".to_vec(),
                400,
            ),
            (
                "a Host that differs from the absolute-form target",
                b"GET http://b{path} HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
                400,
            ),
            // RFC 9112 §3.2: Pingora would escape it as %20.
            (
                "a space in the target",
                b"GET {path}a b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
                400,
            ),
            (
                "a tab in the target",
                b"GET {path}a\tb HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
                400,
            ),
        ],
    );
}

#[test]
fn heads_over_the_limits_get_414_and_431() {
    let upstream = Upstream::start("app");
    let defaults = host(&upstream, "");
    let long_target = format!(
        "GET {{path}}{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a".repeat(9000)
    );
    let big_header = format!(
        "GET {{path}} HTTP/1.1\r\nHost: a\r\nX-A: {}\r\n\r\n",
        "a".repeat(65536)
    );
    let many: String = (0..150).map(|i| format!("X-{i}: a\r\n")).collect();
    let many_headers = format!("GET {{path}} HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    refused(
        &defaults,
        &upstream,
        &[
            ("a 9 KB request line", long_target.clone().into_bytes(), 414),
            ("a 64 KB header", big_header.into_bytes(), 431),
            ("150 header fields", many_headers.into_bytes(), 431),
        ],
    );

    // The limits are the operator's.
    let tight = host(
        &upstream,
        "max_request_line_bytes = 100\nmax_header_bytes = 200\nmax_headers = 5\n",
    );
    let target = format!(
        "GET {{path}}{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a".repeat(100)
    );
    let header = format!(
        "GET {{path}} HTTP/1.1\r\nHost: a\r\nX-A: {}\r\n\r\n",
        "a".repeat(200)
    );
    let six: String = (0..5).map(|i| format!("X-{i}: a\r\n")).collect();
    let six = format!("GET {{path}} HTTP/1.1\r\nHost: a\r\n{six}\r\n");
    refused(
        &tight,
        &upstream,
        &[
            ("a request line over 100 bytes", target.into_bytes(), 414),
            ("a header block over 200 bytes", header.into_bytes(), 431),
            ("six header fields", six.into_bytes(), 431),
        ],
    );
    // At the limits, not over them: Kavro's own headers (X-Request-Id) do
    // not count against the client's.
    let five: String = (0..3).map(|i| format!("X-{i}: a\r\n")).collect();
    let five = format!("GET /r HTTP/1.1\r\nHost: a\r\n{five}Connection: close\r\n\r\n");
    assert_eq!(send(tight.addr, five.as_bytes()), (200, true));
    // What the default limits refuse, a generous operator accepts.
    let roomy = host(&upstream, "max_request_line_bytes = 16384\n");
    let (status, _) = send(roomy.addr, long_target.replace("{path}", "/r").as_bytes());
    assert_eq!(status, 200);
}

#[test]
fn well_formed_requests_pass_and_keep_their_connection() {
    let upstream = Upstream::start("app");
    let host = host(&upstream, "");
    let mut s = TcpStream::connect(host.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A chunked POST and a Content-Length POST to the upstream, then a GET,
    // on one connection: each answered 200, the bodies forwarded whole.
    s.write_all(
        b"POST /proxy/a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .unwrap();
    let first = read_response(&mut s);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains("hello world"), "{first}");
    s.write_all(b"POST /proxy/b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let second = read_response(&mut s);
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    s.write_all(b"GET /r HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let third = read_response(&mut s);
    assert!(third.starts_with("HTTP/1.1 200"), "{third}");
    assert_eq!(upstream.hits(), 2);

    // HTTP/1.0 needs no Host.
    let (status, _) = send(
        host.addr,
        b"GET /r HTTP/1.0\r\nX-Padding: so-h2c-sees-24-bytes\r\n\r\n",
    );
    assert_eq!(status, 200);
}

/// One response with a Content-Length body, read off a kept-alive connection.
fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).expect("an answer");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("a Content-Length");
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}
