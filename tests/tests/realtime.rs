//! The realtime hub, with a real backend (tests/src/realtime.rs) and real
//! WebSocket clients: events and their headers, groups, direct replies,
//! the publish endpoint and its secret, what a backend's refusal or bad
//! answer does, the close codes for bad input, a thousand clients reached
//! by one publish, then SIGTERM closing them all with 1001.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use kavro_e2e::realtime::Backend;
use kavro_e2e::websocket::{close_code, connect, connect_with, next_text, Client};
use kavro_e2e::{client, Host};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "test-publish-secret";

fn config(backend: &Backend, extra: &str) -> String {
    format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"live\"\npath = \"/live\"\n\
         realtime = {{ backend = \"app\"{extra} }}\n\n\
         [[routes]]\nname = \"other\"\npath = \"/*\"\nrespond = {{ body = \"page\" }}\n",
        backend.addr
    )
}

fn start(backend: &Backend, extra: &str) -> Host {
    Host::builder()
        .config(&config(backend, extra))
        .env("KAVRO_PUBLISH_SECRET", SECRET)
        .start()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ws_url(host: &Host) -> String {
    host.url("/live?room=7").replacen("http://", "ws://", 1)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("`{text}`: {e}"))
}

/// A client, connected and welcomed: its id.
async fn join(host: &Host) -> (Client, String) {
    let mut ws = connect(&ws_url(host)).await.unwrap();
    let welcome = json(&next_text(&mut ws).await.expect("a welcome"));
    let id = welcome["welcome"].as_str().expect("an id").to_string();
    (ws, id)
}

async fn say(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// Runs a blocking call (the HTTP client's, the admin API's) from inside
/// the clients' runtime, on a thread of its own.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

fn publish(host: &Host, auth: Option<&str>, body: &str) -> (u16, String) {
    off_runtime(|| publish_now(host, auth, body))
}

fn publish_now(host: &Host, auth: Option<&str>, body: &str) -> (u16, String) {
    let mut req = client().post(host.url("/publish")).body(body.to_string());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().unwrap();
    (resp.status().as_u16(), resp.text().unwrap())
}

#[test]
fn events_groups_replies_and_publish() {
    let backend = Backend::start();
    let host = start(&backend, "");
    runtime().block_on(async {
        let (mut a, id_a) = join(&host).await;
        let (mut b, id_b) = join(&host).await;
        assert_ne!(id_a, id_b);

        // The open event carries the client's id and the upgrade's context.
        let opens = backend.events_of("open");
        assert_eq!(opens.len(), 2);
        let open = &opens[0];
        assert_eq!(open.client, id_a);
        assert_eq!(open.header("x-forwarded-uri"), Some("/live?room=7"));
        assert_eq!(open.header("x-forwarded-for"), Some("127.0.0.1"));
        assert!(open.header("x-request-id").is_some());

        // To a group: both members; back to the sender without `@`.
        say(&mut a, "say /lobby hello all").await;
        for ws in [&mut a, &mut b] {
            assert_eq!(
                json(&next_text(ws).await.unwrap()),
                json(r#"{"text":"hello all"}"#)
            );
        }
        say(&mut b, "echo just me").await;
        assert_eq!(json(&next_text(&mut b).await.unwrap())["echo"], "just me");

        // A group only `a` joined; a message to a client by its id.
        say(&mut a, "join /ops").await;
        say(&mut a, "echo joined").await;
        assert_eq!(json(&next_text(&mut a).await.unwrap())["echo"], "joined");
        say(&mut b, "say /ops for ops").await;
        say(&mut b, &format!("say {id_a} direct")).await;
        assert_eq!(json(&next_text(&mut a).await.unwrap())["text"], "for ops");
        assert_eq!(json(&next_text(&mut a).await.unwrap())["text"], "direct");
        say(&mut b, "echo b saw nothing").await;
        assert_eq!(
            json(&next_text(&mut b).await.unwrap())["echo"],
            "b saw nothing"
        );

        // A bad answer or a failing backend drops the message; the
        // connection stays.
        say(&mut a, "garbage").await;
        say(&mut a, "fail").await;
        say(&mut a, "echo still here").await;
        assert_eq!(
            json(&next_text(&mut a).await.unwrap())["echo"],
            "still here"
        );

        // Publishing: the secret is required, and nothing goes out without it.
        let message = r#"{"@": "/lobby", "news": 1}"#;
        assert_eq!(publish(&host, None, message).0, 401);
        assert_eq!(publish(&host, Some("Bearer wrong"), message).0, 401);
        assert_eq!(
            publish(&host, Some(&format!("Bearer {SECRET}")), "{}").0,
            400
        );
        let (status, body) = publish(&host, Some(&format!("Bearer {SECRET}")), message);
        assert_eq!((status, json(&body)), (200, json(r#"{"delivered":2}"#)));
        for ws in [&mut a, &mut b] {
            assert_eq!(json(&next_text(ws).await.unwrap()), json(r#"{"news":1}"#));
        }

        let d = off_runtime(|| host.admin_json("/diagnostics"));
        let rt = &d["realtime"];
        assert_eq!(
            (rt["clients"].as_u64(), rt["groups"].as_u64()),
            (Some(2), Some(2)),
            "{d}"
        );
        assert_eq!(rt["messages"], 10, "{d}");
        assert_eq!(rt["published"], 1, "{d}");
        assert!(rt["backend_errors"].as_u64() >= Some(2), "{d}");
        assert_eq!(rt["publish"]["on"], true, "{d}");

        // `a` leaves: the backend hears of it, and tells the lobby.
        a.close(None).await.unwrap();
        let _ = close_code(&mut a).await;
        let left = json(&next_text(&mut b).await.unwrap());
        assert_eq!(left["left"], id_a.as_str());
        assert_eq!(backend.events_of("close")[0].client, id_a);
    });
    // Other routes are untouched.
    assert_eq!(
        client().get(host.url("/x")).send().unwrap().text().unwrap(),
        "page"
    );
    host.assert_logged("realtime_backend_error");
}

#[test]
fn refusals_and_close_codes_for_bad_input() {
    let backend = Backend::start();
    let host = start(&backend, ", max_message_bytes = 1024");
    runtime().block_on(async {
        // The backend refuses the open: its answer instead of the 101.
        let refused = connect_with(&ws_url(&host), "cookie", "session=deny").await;
        let Err((status, body)) = refused else {
            panic!("the backend's refusal was not sent");
        };
        assert_eq!((status, body.as_str()), (403, "not you\n"));

        // Over the limit: 1009; binary: 1003.
        let (mut ws, _) = join(&host).await;
        say(&mut ws, &"x".repeat(2000)).await;
        assert_eq!(close_code(&mut ws).await, Some(1009));
        let (mut ws, _) = join(&host).await;
        ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(1003));
    });
    // A plain GET is told to upgrade.
    let resp = client().get(host.url("/live")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 426);
    assert_eq!(resp.headers()["upgrade"], "websocket");

    // A malformed frame (a reserved bit set): 1002.
    let mut s = std::net::TcpStream::connect(host.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "the handshake's answer");
        got.push(byte[0]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // FIN + RSV1 + text, masked, 2 bytes.
    s.write_all(&[0xC1, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
        .unwrap();
    let mut frames = Vec::new();
    let _ = s.read_to_end(&mut frames);
    let welcome_and_close = String::from_utf8_lossy(&frames);
    let at = frames
        .windows(2)
        .position(|w| w[0] == 0x88)
        .unwrap_or_else(|| panic!("no close frame in {welcome_and_close:?}"));
    assert_eq!(&frames[at + 2..at + 4], &1002u16.to_be_bytes());

    // No secret set: publishing is off, and says how to turn it on.
    let no_secret = Host::builder().config(&config(&backend, "")).start();
    let (status, body) = publish(&no_secret, Some("Bearer x"), r#"{"@": "/g", "m": 1}"#);
    assert_eq!(status, 503);
    assert!(body.contains("KAVRO_PUBLISH_SECRET"), "{body}");

    // A backend that cannot be reached: 502 for the handshake.
    let dead = format!(
        "[upstreams.app]\ntargets = [\"127.0.0.1:{}\"]\n\n\
         [[routes]]\npath = \"/live\"\nrealtime = {{ backend = \"app\" }}\n",
        kavro_e2e::free_port()
    );
    let host = Host::builder().config(&dead).start();
    runtime().block_on(async {
        let refused = connect(&ws_url(&host)).await;
        assert_eq!(refused.err(), Some(502));
    });
}

/// One publish reaches a thousand clients; the figures are printed, not
/// asserted (BENCHMARKS.md records them). Then SIGTERM closes every client
/// with 1001 and the host exits cleanly.
#[test]
fn a_thousand_clients_one_publish_then_sigterm() {
    const CLIENTS: usize = 1000;
    let backend = Backend::start();
    let mut host = start(&backend, "");
    let rt = runtime();
    let mut clients = rt.block_on(async {
        let mut all = Vec::with_capacity(CLIENTS);
        for chunk in 0..CLIENTS / 50 {
            let joined = futures_util::future::join_all((0..50).map(|_| join(&host))).await;
            all.extend(joined.into_iter().map(|(ws, _)| ws));
            assert_eq!(all.len(), (chunk + 1) * 50);
        }
        all
    });
    let d = host.admin_json("/diagnostics");
    assert_eq!(d["realtime"]["clients"], CLIENTS, "{d}");
    let started = Instant::now();
    let (status, body) = publish(
        &host,
        Some(&format!("Bearer {SECRET}")),
        r#"{"@": "/lobby", "go": 1}"#,
    );
    assert_eq!(
        (status, json(&body)["delivered"].as_u64()),
        (200, Some(CLIENTS as u64))
    );
    let mut latencies = rt.block_on(async {
        let reads = clients.iter_mut().map(|ws| async move {
            let text = next_text(ws).await.expect("the publish");
            assert_eq!(json(&text)["go"], 1);
            started.elapsed()
        });
        futures_util::future::join_all(reads).await
    });
    latencies.sort();
    println!(
        "one publish to {CLIENTS} clients: p50 {:?}, p99 {:?}, last {:?}",
        latencies[CLIENTS / 2],
        latencies[CLIENTS * 99 / 100],
        latencies[CLIENTS - 1]
    );
    host.signal("TERM");
    let codes = rt.block_on(async {
        let closes = clients.iter_mut().map(close_code);
        futures_util::future::join_all(closes).await
    });
    assert!(codes.iter().all(|c| *c == Some(1001)), "{:?}", &codes[..5]);
    drop(clients);
    assert!(host.wait_exit(Duration::from_secs(20)).success());
}

/// The `realtime` capability: a plugin (announcer, from prime) publishes
/// to a group and reads its size; without the grant its calls are denied.
#[test]
fn a_plugin_publishes_with_the_realtime_capability() {
    let backend = Backend::start();
    let granted = format!(
        "{}\n[[plugins]]\nname = \"announcer\"\ncapabilities = [\"realtime\"]\n",
        config(&backend, "")
    );
    let host = Host::builder()
        .plugin("announcer", "announcer")
        .config(&granted)
        .start();
    let announce = |host: &Host| {
        client()
            .post(host.url("/announce?/lobby"))
            .header("x-text", "maintenance")
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    runtime().block_on(async {
        let (mut a, _) = join(&host).await;
        let (mut b, _) = join(&host).await;
        assert_eq!(off_runtime(|| announce(&host)), "reached 2 of 2\n");
        for ws in [&mut a, &mut b] {
            let got = json(&next_text(ws).await.unwrap());
            assert_eq!(got["announce"], "maintenance");
        }
    });
    let ungranted = format!(
        "{}\n[[plugins]]\nname = \"announcer\"\n",
        config(&backend, "")
    );
    let host = Host::builder()
        .plugin("announcer", "announcer")
        .config(&ungranted)
        .start();
    let denied = announce(&host);
    assert!(
        denied.contains("Denied") && denied.contains("realtime"),
        "{denied}"
    );
}

/// A slow backend holds up neither what the client is sent nor the rest
/// of its messages' order; the backend picks the client's subprotocol.
#[test]
fn a_slow_backend_holds_up_nothing_else() {
    let backend = Backend::start();
    let host = start(&backend, "");
    runtime().block_on(async {
        let chat = connect_with(&ws_url(&host), "sec-websocket-protocol", "chat.v2, chat.v1").await;
        let Ok(mut ws) = chat else {
            panic!("the subprotocol handshake failed");
        };
        next_text(&mut ws).await.expect("the welcome");
        say(&mut ws, "sleep 800").await;
        say(&mut ws, "echo after the sleep").await;
        // Published while the backend sleeps: it arrives first.
        let (status, _) = publish(
            &host,
            Some(&format!("Bearer {SECRET}")),
            r#"{"@": "/lobby", "news": 2}"#,
        );
        assert_eq!(status, 200);
        assert_eq!(json(&next_text(&mut ws).await.unwrap())["news"], 2);
        // The messages' answers still come in the order they were sent.
        assert_eq!(json(&next_text(&mut ws).await.unwrap())["slept"], 800);
        assert_eq!(
            json(&next_text(&mut ws).await.unwrap())["echo"],
            "after the sleep"
        );
    });
}
