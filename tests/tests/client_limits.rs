//! What one client may hold, over raw sockets: a head or a body that
//! trickles in meets a timeout (408), an idle kept-alive connection is
//! closed, a connection serves a bounded number of requests, an address
//! holds a bounded number of connections, a route bounds request bodies
//! (413), and `Expect: 100-continue` is answered. Other clients are served
//! meanwhile.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kavro_e2e::raw::{closed_within, connect, response};
use kavro_e2e::upstream::Upstream;
use kavro_e2e::Host;

fn host(upstream: &Upstream, server: &str, routes: &str) -> Host {
    let config = format!(
        "[server]\n{server}\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\
         {routes}\
         [[routes]]\nname = \"proxied\"\npath = \"/proxy/*\"\nproxy = \"app\"\n\
         [[routes]]\nname = \"answer\"\npath = \"/*\"\nrespond = {{ body = \"ok\" }}\n",
        upstream.addr
    );
    Host::builder().config(&config).start()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n")
}

#[test]
fn slow_heads_and_idle_connections_are_timed_out() {
    let upstream = Upstream::start("app");
    let host = host(
        &upstream,
        "header_timeout_ms = 600\nkeepalive_timeout_s = 1\n",
        "",
    );

    // A head that stops: 408 once the header timeout has passed.
    let mut s = connect(host.addr);
    s.write_all(b"GET /r HTTP/1.1\r\nHost: a\r\n").unwrap();
    let started = Instant::now();
    let (status, _, _) = response(&mut s).expect("a 408");
    assert_eq!(status, 408);
    assert!(closed_within(&mut s, Duration::from_secs(2)));
    assert!(started.elapsed() < Duration::from_secs(3));

    // A head that trickles, a byte every 300 ms: each read is quick, the
    // whole is not, and the answer comes before the head would have ended.
    let mut s = connect(host.addr);
    let mut writer = s.try_clone().unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle = {
        let done = done.clone();
        std::thread::spawn(move || {
            for b in get("/r").as_bytes() {
                if writer.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let (status, _, _) = response(&mut s).expect("a 408");
    assert_eq!(status, 408);
    assert!(!done.load(std::sync::atomic::Ordering::SeqCst));
    drop(s);
    trickle.join().unwrap();

    // A connection that sends nothing is closed too.
    let mut silent = connect(host.addr);
    assert!(closed_within(&mut silent, Duration::from_secs(3)));

    // A short HTTP/1.0 request, under the 24 bytes of the HTTP/2 preface,
    // is answered at once.
    let mut s = connect(host.addr);
    s.write_all(b"GET /r HTTP/1.0\r\n\r\n").unwrap();
    let (status, _, body) = response(&mut s).expect("an answer");
    assert_eq!((status, body.as_str()), (200, "ok"));

    // Idle after a response: closed after keepalive_timeout_s, whatever
    // the client's Keep-Alive header asks for.
    let mut s = connect(host.addr);
    s.write_all(b"GET /r HTTP/1.1\r\nHost: a\r\nKeep-Alive: timeout=600\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s).unwrap().0, 200);
    let idle = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(4)));
    assert!(idle.elapsed() >= Duration::from_millis(900));

    // Every timeout left the other clients alone.
    let mut s = connect(host.addr);
    s.write_all(get("/proxy/x").as_bytes()).unwrap();
    assert_eq!(response(&mut s).unwrap().0, 200);
    host.assert_logged("request head incomplete after the header timeout");
}

#[test]
fn a_body_that_stops_arriving_gets_408() {
    let upstream = Upstream::start("app");
    let host = host(&upstream, "body_timeout_ms = 500\n", "");
    let mut s = connect(host.addr);
    s.write_all(b"POST /proxy/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
        .unwrap();
    let (status, _, body) = response(&mut s).expect("a 408");
    assert_eq!(status, 408, "{body}");
    assert!(closed_within(&mut s, Duration::from_secs(2)));
    host.assert_logged("request refused");

    // A body that keeps coming, slower than the timeout in all but each
    // piece, is read whole.
    let mut s = connect(host.addr);
    s.write_all(b"POST /proxy/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
        .unwrap();
    for piece in [b"he", b"ll", b"o ", b"wo", b"rl"] {
        std::thread::sleep(Duration::from_millis(200));
        s.write_all(piece).unwrap();
    }
    let (status, _, body) = response(&mut s).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("\"body\":\"hello worl\""), "{body}");
}

#[test]
fn bodies_over_the_route_limit_get_413_before_the_upstream() {
    let upstream = Upstream::start("app");
    let routes = "[[routes]]\nname = \"small\"\npath = \"/small/*\"\nproxy = \"app\"\n\
                  max_request_bytes = 10\n\
                  [[routes]]\nname = \"tiny-answer\"\npath = \"/tiny\"\n\
                  respond = { body = \"ok\" }\nmax_request_bytes = 1\n";
    let host = host(&upstream, "max_request_bytes = 20\n", routes);
    let post = |path: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let chunked = |path: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
    };
    for (request, status) in [
        (post("/small/x", "0123456789"), 200),
        (post("/small/x", "0123456789a"), 413),
        (chunked("/small/x", "0123456789a"), 413),
        (chunked("/small/x", "0123456789"), 200),
        // The server's limit where the route sets none.
        (post("/proxy/x", &"b".repeat(20)), 200),
        (post("/proxy/x", &"b".repeat(21)), 413),
        (post("/tiny", "ab"), 413),
    ] {
        let before = upstream.hits();
        let mut s = connect(host.addr);
        s.write_all(request.as_bytes()).unwrap();
        let (got, head, body) = response(&mut s).expect("an answer");
        assert_eq!(got, status, "{request:?}: {body}");
        if status == 413 {
            assert!(body.contains("larger than this route accepts"), "{body}");
            assert!(
                head.to_ascii_lowercase().contains("connection: close"),
                "{head}"
            );
            // Declared too large: refused before the upstream is asked (a
            // chunked body is cut off where it crosses the limit).
            if request.contains("Content-Length") {
                assert_eq!(upstream.hits(), before, "{request:?}");
            }
        }
    }
    host.assert_logged("request refused: the request body is larger than this route accepts");
}

#[test]
fn expect_100_continue_is_answered_by_kavro() {
    let upstream = Upstream::start("app");
    let routes = "[[routes]]\nname = \"small\"\npath = \"/small/*\"\nproxy = \"app\"\n\
                  max_request_bytes = 4\n";
    let host = host(&upstream, "", routes);

    let mut s = connect(host.addr);
    s.write_all(
        b"POST /proxy/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let (status, _, _) = response(&mut s).expect("100 Continue before the body");
    assert_eq!(status, 100);
    s.write_all(b"hello").unwrap();
    let (status, _, body) = response(&mut s).unwrap();
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["body"], "hello");
    assert!(echo["headers"].get("expect").is_none(), "{echo}");
    // The connection goes on.
    s.write_all(get("/proxy/y").as_bytes()).unwrap();
    assert_eq!(response(&mut s).unwrap().0, 200);

    // A body the route will not take: the final answer, and no 100.
    let mut s = connect(host.addr);
    s.write_all(
        b"POST /small/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response(&mut s).unwrap().0, 413);

    // An expectation Kavro cannot meet.
    let mut s = connect(host.addr);
    s.write_all(b"GET /r HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut s).unwrap().0, 417);
}

#[test]
fn connections_serve_a_bounded_number_of_requests() {
    let upstream = Upstream::start("app");
    let host = host(&upstream, "max_requests_per_connection = 3\n", "");
    let mut s = connect(host.addr);
    for i in 1..=3 {
        s.write_all(get("/proxy/x").as_bytes()).unwrap();
        let (status, head, _) = response(&mut s).expect("an answer");
        assert_eq!(status, 200);
        let closing = head.to_ascii_lowercase().contains("connection: close");
        assert_eq!(closing, i == 3, "request {i}: {head}");
    }
    assert!(closed_within(&mut s, Duration::from_secs(2)));
}

#[test]
fn an_address_holds_a_bounded_number_of_connections() {
    let upstream = Upstream::start("app");
    let mut host = host(&upstream, "max_connections_per_ip = 4\n", "");
    // Four held open, one of them idle from the start.
    let mut held: Vec<TcpStream> = (0..4).map(|_| connect(host.addr)).collect();
    for s in &mut held[1..] {
        s.write_all(get("/proxy/x").as_bytes()).unwrap();
        assert_eq!(response(s).unwrap().0, 200);
    }
    let mut fifth = connect(host.addr);
    let _ = fifth.write_all(get("/r").as_bytes());
    assert!(
        response(&mut fifth).is_none(),
        "a fifth connection is closed"
    );
    // One closes: a new one is served.
    drop(held.pop());
    let served = kavro_e2e::eventually("a connection after one closed", || {
        let mut s = connect(host.addr);
        s.write_all(get("/r").as_bytes()).ok()?;
        response(&mut s).map(|r| r.0)
    });
    assert_eq!(served, 200);
    let refused = host.admin_json("/diagnostics")["connections_refused"]
        .as_u64()
        .unwrap();
    assert!(refused >= 1, "{refused}");
    host.assert_logged("connection refused: 127.0.0.1 already has 4 open");
    drop(held);

    // 32 clients at once, each on its own connection, under a limit that
    // fits them: all served; then a clean SIGTERM.
    drop(host);
    host = self::host(&upstream, "max_connections_per_ip = 32\n", "");
    let addr = host.addr;
    let workers: Vec<_> = (0..32)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect(addr);
                (0..20)
                    .filter(|_| {
                        s.write_all(get("/proxy/x").as_bytes()).is_ok()
                            && response(&mut s).is_some_and(|r| r.0 == 200)
                    })
                    .count()
            })
        })
        .collect();
    let served: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(served, 32 * 20);
    assert!(host.terminate(Duration::from_secs(10)).success());
}
