//! WebSocket through a proxy route: the handshake reaches the upstream
//! with the forwarding headers, frames flow both ways unbuffered, close
//! codes arrive in both directions, many connections at once, an upgrade
//! on a cached route bypasses the cache, and a clean SIGTERM after.

use std::time::Duration;

use futures_util::SinkExt;
use kavro_e2e::websocket::{close_code, connect, connect_with, next_text, WsUpstream};
use kavro_e2e::Host;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

fn ws_config(up: &WsUpstream) -> String {
    format!(
        "[upstreams.live]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"live\"\npath = \"/live/*\"\nproxy = \"live\"\n\n\
         [[routes]]\nname = \"cached\"\npath = \"/cached/*\"\nproxy = \"live\"\ncache = {{ ttl = \"60s\" }}\n",
        up.addr
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ws_url(host: &Host, path: &str) -> String {
    host.url(path).replacen("http://", "ws://", 1)
}

#[test]
fn frames_flow_both_ways_and_close_codes_arrive() {
    let up = WsUpstream::start();
    let host = Host::builder().config(&ws_config(&up)).start();
    runtime().block_on(async {
        let mut ws = connect(&ws_url(&host, "/live/chat")).await.unwrap();
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(next_text(&mut ws).await.as_deref(), Some("hello"));
        let big = "x".repeat(200_000);
        ws.send(Message::binary(big.clone().into_bytes()))
            .await
            .unwrap();
        assert_eq!(next_text(&mut ws).await.as_deref(), Some(big.as_str()));
        // The upstream closes with its code; the client sees it.
        ws.send(Message::text("close 4002")).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(4002));

        // The client closes with its code; the upstream sees it.
        let mut ws = connect(&ws_url(&host, "/live/chat")).await.unwrap();
        ws.send(Message::text("ping")).await.unwrap();
        assert_eq!(next_text(&mut ws).await.as_deref(), Some("ping"));
        ws.close(Some(CloseFrame {
            code: CloseCode::from(4001),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        let _ = close_code(&mut ws).await;
    });
    kavro_e2e::eventually("the upstream to see the client's close", || {
        up.closes().contains(&4001).then_some(())
    });
    assert_eq!(
        up.handshake_header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert!(up.handshake_header("x-request-id").is_some());
}

#[test]
fn thirty_two_connections_at_once_a_cached_route_bypassed_then_sigterm() {
    let up = WsUpstream::start();
    let mut host = Host::builder().config(&ws_config(&up)).start();
    runtime().block_on(async {
        let mut clients = Vec::new();
        for i in 0..32 {
            let path = if i % 2 == 0 {
                "/live/room"
            } else {
                "/cached/room"
            };
            clients.push(connect(&ws_url(&host, path)).await.unwrap());
        }
        for round in 0..3 {
            for (i, ws) in clients.iter_mut().enumerate() {
                ws.send(Message::text(format!("{i}-{round}")))
                    .await
                    .unwrap();
            }
            for (i, ws) in clients.iter_mut().enumerate() {
                assert_eq!(next_text(ws).await, Some(format!("{i}-{round}")));
            }
        }
        for mut ws in clients {
            ws.close(None).await.unwrap();
            let _ = close_code(&mut ws).await;
        }
    });
    assert_eq!(up.opened(), 32);
    let d = host.admin_json("/diagnostics");
    assert_eq!(d["cache"]["stores"], 0, "{d}");
    assert!(host.terminate(Duration::from_secs(10)).success());
}

/// `websocket_idle_timeout_ms`: a connection where nothing moves is
/// closed; one that keeps talking stays open past it. `max_inflight`
/// bounds the WebSockets open to an upstream: past it and its queue, 503.
#[test]
fn idle_connections_close_and_max_inflight_bounds_them() {
    let up = WsUpstream::start();
    let config = format!(
        "[server]\nwebsocket_idle_timeout_ms = 600\n\n\
         [upstreams.live]\ntargets = [\"{}\"]\nmax_inflight = 2\nmax_queue = 0\n\n\
         [[routes]]\nname = \"live\"\npath = \"/live/*\"\nproxy = \"live\"\n",
        up.addr
    );
    let host = Host::builder().config(&config).start();
    runtime().block_on(async {
        let mut talking = connect(&ws_url(&host, "/live/a")).await.unwrap();
        let mut idle = connect(&ws_url(&host, "/live/b")).await.unwrap();
        assert_eq!(connect(&ws_url(&host, "/live/c")).await.err(), Some(503));
        for i in 0..6 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            talking.send(Message::text(format!("{i}"))).await.unwrap();
            assert_eq!(next_text(&mut talking).await, Some(format!("{i}")));
        }
        // 1.5 s without a frame: closed, without an echo.
        let _ = idle.send(Message::text("late")).await;
        assert_eq!(next_text(&mut idle).await, None);
        talking.close(None).await.unwrap();
        let _ = close_code(&mut talking).await;
        // The slots are free again.
        let mut again = connect(&ws_url(&host, "/live/d")).await.unwrap();
        again.send(Message::text("back")).await.unwrap();
        assert_eq!(next_text(&mut again).await.as_deref(), Some("back"));
    });
}

/// Prime sees the handshake like any request: a plugin may answer it
/// instead of the upstream (here `only-prime`, on `x-answer`), and the
/// upgrade never reaches the upstream; without the header it goes through.
#[test]
fn prime_answers_a_handshake_in_place_of_the_upstream() {
    let up = WsUpstream::start();
    let config = format!("{}\n[[plugins]]\nname = \"only\"\n", ws_config(&up));
    let host = Host::builder()
        .plugin("only-prime", "only")
        .config(&config)
        .start();
    runtime().block_on(async {
        let refused = connect_with(&ws_url(&host, "/live/a"), "x-answer", "1").await;
        let Err((status, body)) = refused else {
            panic!("the handshake was not answered by prime");
        };
        assert_eq!((status, body.as_str()), (200, "answered by prime\n"));
        assert_eq!(up.opened(), 0);
        let mut ws = connect_with(&ws_url(&host, "/live/a"), "x-other", "1")
            .await
            .unwrap();
        ws.send(Message::text("through")).await.unwrap();
        assert_eq!(next_text(&mut ws).await.as_deref(), Some("through"));
    });
    assert_eq!(up.opened(), 1);
}

/// What a WebSocket carries passes through untouched: a message in
/// fragments arrives whole, a 1 MiB message, a ping's payload in its pong.
#[test]
fn fragments_a_mebibyte_and_ping_pong_pass_through() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let up = WsUpstream::start();
    let host = Host::builder().config(&ws_config(&up)).start();
    runtime().block_on(async {
        let mut ws = connect(&ws_url(&host, "/live/x")).await.unwrap();
        // Three frames of one text message.
        let parts = [
            ("hel", OpCode::Data(Data::Text), false),
            ("lo ", OpCode::Data(Data::Continue), false),
            ("world", OpCode::Data(Data::Continue), true),
        ];
        for (text, op, fin) in parts {
            let frame = Frame::message(text.as_bytes().to_vec(), op, fin);
            ws.send(Message::Frame(frame)).await.unwrap();
        }
        assert_eq!(next_text(&mut ws).await.as_deref(), Some("hello world"));
        let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(big.clone())).await.unwrap();
        match futures_util::StreamExt::next(&mut ws).await {
            Some(Ok(Message::Binary(b))) => assert!(b == big, "the 1 MiB message changed"),
            other => panic!("{other:?}"),
        }
        ws.send(Message::Ping(b"are you there".to_vec()))
            .await
            .unwrap();
        loop {
            match futures_util::StreamExt::next(&mut ws).await {
                Some(Ok(Message::Pong(p))) => {
                    assert_eq!(p, b"are you there");
                    break;
                }
                Some(Ok(_)) => continue,
                other => panic!("no pong: {other:?}"),
            }
        }
    });
}

/// A thousand WebSockets open at once through one proxy route, each
/// echoing; then SIGTERM: the host waits for them within its grace
/// period and exits once they close.
#[test]
fn a_thousand_connections_at_once() {
    const N: usize = 1000;
    let up = WsUpstream::start();
    let config = format!("[server]\nshutdown_grace_s = 20\n\n{}", ws_config(&up));
    let mut host = Host::builder().config(&config).start();
    let rt = runtime();
    let mut all = rt.block_on(async {
        let mut all = Vec::with_capacity(N);
        let url = ws_url(&host, "/live/many");
        for _ in 0..N / 50 {
            let batch = (0..50).map(|_| connect(&url));
            for ws in futures_util::future::join_all(batch).await {
                all.push(ws.unwrap());
            }
        }
        let echoes = all.iter_mut().enumerate().map(|(i, ws)| async move {
            ws.send(Message::text(format!("{i}"))).await.unwrap();
            assert_eq!(next_text(ws).await, Some(format!("{i}")));
        });
        futures_util::future::join_all(echoes).await;
        all
    });
    assert_eq!(up.opened(), N);
    host.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(async {
        let closes = all.iter_mut().map(|ws| ws.close(None));
        futures_util::future::join_all(closes).await;
    });
    drop(all);
    assert!(host.wait_exit(Duration::from_secs(20)).success());
}
