//! PROXY protocol listeners (`proxy_protocol = true`): the header's source
//! is the client for the upstream (X-Forwarded-For), on every request of
//! the connection; a connection without a valid header, or from a peer
//! outside `trusted_proxies`, is closed; other listeners are untouched.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kavro_e2e::raw::{closed_within, connect, response};
use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, free_port, Host};

struct Listeners {
    host: Host,
    proxied: SocketAddr,
    plain: SocketAddr,
}

fn start(upstream: &Upstream, server: &str) -> Listeners {
    let (proxied, plain) = (free_port(), free_port());
    let config = format!(
        "[server]\n\
         listen = [{{ address = \"127.0.0.1:{proxied}\", proxy_protocol = true }}, \"127.0.0.1:{plain}\"]\n\
         {server}\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\nname = \"proxied\"\npath = \"/*\"\nproxy = \"app\"\n",
        upstream.addr
    );
    let host = Host::builder()
        .config(&config)
        .listen_port(plain)
        .listen_in_config()
        .start();
    Listeners {
        host,
        proxied: format!("127.0.0.1:{proxied}").parse().unwrap(),
        plain: format!("127.0.0.1:{plain}").parse().unwrap(),
    }
}

fn v1(source: &str, port: u16) -> Vec<u8> {
    format!("PROXY TCP4 {source} 127.0.0.1 51000 {port}\r\n").into_bytes()
}

fn v2(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&source);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&51000u16.to_be_bytes());
    h.extend_from_slice(&port.to_be_bytes());
    h
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";

/// The X-Forwarded-For the upstream got for one request on `s`, sent
/// in one write after `before`.
fn forwarded_for_after(s: &mut TcpStream, before: &[u8]) -> String {
    s.write_all(&[before, GET].concat()).unwrap();
    let (status, _, body) = response(s).expect("an answer");
    assert_eq!(status, 200, "{body}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    echo["headers"]["x-forwarded-for"][0]
        .as_str()
        .unwrap()
        .to_string()
}

fn forwarded_for(s: &mut TcpStream) -> String {
    forwarded_for_after(s, b"")
}

#[test]
fn the_header_names_the_client_of_every_request_on_its_connection() {
    let upstream = Upstream::start("app");
    let l = start(&upstream, "");
    let port = l.proxied.port();

    let mut s = connect(l.proxied);
    s.write_all(&v1("203.0.113.7", port)).unwrap();
    assert_eq!(forwarded_for(&mut s), "203.0.113.7");
    assert_eq!(forwarded_for(&mut s), "203.0.113.7", "kept-alive");

    // v2, with the request in the same write as the header.
    let mut s = connect(l.proxied);
    let header = v2([198, 51, 100, 9], port);
    assert_eq!(forwarded_for_after(&mut s, &header), "198.51.100.9");

    // A balancer's health check (v1 UNKNOWN): its own address stays.
    let mut s = connect(l.proxied);
    s.write_all(b"PROXY UNKNOWN\r\n").unwrap();
    assert_eq!(forwarded_for(&mut s), "127.0.0.1");

    // The plain listener beside it takes no header.
    let r = client()
        .get(format!("http://{}/x", l.plain))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn a_connection_without_a_valid_header_is_closed() {
    let upstream = Upstream::start("app");
    let l = start(&upstream, "header_timeout_ms = 500");
    let hits = upstream.hits();
    for bad in [
        GET.to_vec(),
        b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n".to_vec(),
        b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
    ] {
        let mut s = connect(l.proxied);
        s.write_all(&bad).unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(3)),
            "{}",
            String::from_utf8_lossy(&bad)
        );
    }
    // Nothing at all: closed at the head timeout.
    let mut s = connect(l.proxied);
    assert!(closed_within(&mut s, Duration::from_secs(3)));
    assert_eq!(upstream.hits(), hits, "nothing reached the upstream");
    l.host.assert_logged("did not start with one");
    l.host.assert_logged("no PROXY header within 500 ms");
    // Served meanwhile.
    let mut s = connect(l.proxied);
    s.write_all(&v1("192.0.2.1", l.proxied.port())).unwrap();
    assert_eq!(forwarded_for(&mut s), "192.0.2.1");
}

#[test]
fn only_a_trusted_peer_may_send_the_header() {
    let upstream = Upstream::start("app");
    let l = start(&upstream, "trusted_proxies = [\"10.0.0.0/8\"]");
    let mut s = connect(l.proxied);
    s.write_all(&v1("203.0.113.7", l.proxied.port())).unwrap();
    s.write_all(GET).unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(3)));
    l.host
        .assert_logged("a PROXY header from a peer outside server.trusted_proxies");
}

/// 32 connections at once, each from its own source, each answered with
/// its own client; then a clean SIGTERM.
#[test]
fn concurrent_connections_each_keep_their_client() {
    let upstream = Upstream::start("app");
    let mut l = start(&upstream, "");
    let port = l.proxied.port();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..32u8)
            .map(|i| {
                let addr = l.proxied;
                s.spawn(move || {
                    let mut c = connect(addr);
                    let source = [203, 0, 113, i + 1];
                    c.write_all(&v2(source, port)).unwrap();
                    for _ in 0..5 {
                        assert_eq!(forwarded_for(&mut c), format!("203.0.113.{}", i + 1));
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });
    assert!(l.host.terminate(Duration::from_secs(10)).success());
}

#[test]
fn redirect_on_a_tls_listener_is_refused() {
    let (ok, out) = Host::builder()
        .config(
            "[tls]\nlisten = [{ address = \"127.0.0.1:8443\", redirect = false }]\n\
             [[tls.certificates]]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .validate();
    assert!(!ok, "{out}");
    assert!(out.contains("tls.listen[0].redirect"), "{out}");
    assert!(out.contains("`redirect` is for plain listeners"), "{out}");
}
