//! A fleet: two kavro-hosts with `[cluster] redis` on one real
//! redis-server. A counter incremented through both is exact, a rate limit
//! holds across them, a publish on one reaches a client on the other, a
//! purge on one purges both; with Redis gone they keep serving, degraded,
//! and recover by themselves when it is back.

use std::time::Duration;

use kavro_e2e::realtime::Backend;
use kavro_e2e::redis::Redis;
use kavro_e2e::upstream::Upstream;
use kavro_e2e::websocket::{connect, next_text, Client};
use kavro_e2e::{client, eventually, eventually_within, Host};

const SECRET: &str = "fleet-secret";

fn fleet_config(redis: &Redis, backend: &Backend, origin: &Upstream, plugins: &str) -> String {
    format!(
        "[cluster]\nredis = \"{}\"\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [upstreams.origin]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"live\"\npath = \"/live\"\nrealtime = {{ backend = \"app\" }}\n\n\
         [[routes]]\nname = \"cached\"\npath = \"/cached/*\"\nproxy = \"origin\"\n\
         cache = {{ ttl = \"60s\" }}\n\n\
         [[routes]]\nname = \"home\"\npath = \"/*\"\nrespond = {{ body = \"ok\" }}\n\n{plugins}",
        redis.url(),
        backend.addr,
        origin.addr
    )
}

const COUNTER: &str = "[[plugins]]\nname = \"counter\"\ncapabilities = [\"kv\"]\n";

/// A host with one plugin: `counter`, or the first-party `rate-limit`.
fn host(config: &str) -> Host {
    let plugin = if config.contains("\"rate-limit\"") {
        ("rate_limit", "rate-limit")
    } else {
        ("counter", "counter")
    };
    Host::builder()
        .plugin(plugin.0, plugin.1)
        .config(config)
        .env("KAVRO_PUBLISH_SECRET", SECRET)
        .start()
}

/// Two hosts with `plugins` on one Redis, both connected to it, and what
/// they serve from. Bind every part: one left out is dropped, and stops.
struct Fleet {
    redis: Redis,
    a: Host,
    b: Host,
    _backend: Backend,
    _origin: Upstream,
}

fn fleet(plugins: &str) -> Fleet {
    let redis = Redis::start();
    let backend = Backend::start();
    let origin = Upstream::start("origin");
    let config = fleet_config(&redis, &backend, &origin, plugins);
    let (a, b) = (host(&config), host(&config));
    until_up(&a);
    until_up(&b);
    Fleet {
        redis,
        a,
        b,
        _backend: backend,
        _origin: origin,
    }
}

/// Waits until the host reaches Redis.
fn until_up(host: &Host) {
    eventually_within(Duration::from_secs(15), "the cluster up", || {
        // The admin listener may start a moment after the proxy's.
        let s: serde_json::Value = client()
            .get(host.admin_url("/status"))
            .send()
            .and_then(|r| r.json())
            .ok()?;
        (s["cluster"]["state"] == "up" && s["status"] == "ok").then_some(())
    });
}

/// Status, x-kavro-cache and body of a GET.
fn get(host: &Host, path: &str) -> (u16, String, Option<String>) {
    let r = client().get(host.url(path)).send().unwrap();
    let status = r.status().as_u16();
    let cache = r
        .headers()
        .get("x-kavro-cache")
        .map_or(String::new(), |v| v.to_str().unwrap().to_string());
    (status, cache, r.text().ok())
}

fn publish(host: &Host, body: &str) -> (u16, String) {
    let r = client()
        .post(host.url("/publish"))
        .header("authorization", format!("Bearer {SECRET}"))
        .body(body.to_string())
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// A hub client of `host`, past its welcome.
async fn welcomed(host: &Host) -> Client {
    let url = host.url("/live").replacen("http://", "ws://", 1);
    let mut ws = connect(&url).await.unwrap();
    next_text(&mut ws).await.expect("the welcome");
    ws
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn counters_publishes_and_purges_span_the_fleet() {
    let Fleet {
        a,
        b,
        redis: _redis,
        _backend,
        _origin,
    } = fleet(COUNTER);

    // 32 clients, 25 increments each, alternating hosts: exact.
    std::thread::scope(|s| {
        for i in 0..32 {
            let hosts = [&a, &b];
            s.spawn(move || {
                for j in 0..25 {
                    let (status, _, body) = get(hosts[(i + j) % 2], "/count");
                    assert_eq!(status, 200, "{body:?}");
                }
            });
        }
    });
    assert_eq!(get(&a, "/count?peek").2.as_deref(), Some("800"));
    assert_eq!(get(&b, "/count?peek").2.as_deref(), Some("800"));

    // A client on A receives what is published on B.
    let rt = runtime();
    let mut ws = rt.block_on(welcomed(&a));
    let (status, body) = publish(&b, r#"{"@": "/lobby", "from": "b"}"#);
    assert_eq!((status, body.trim()), (200, r#"{"delivered":0}"#));
    let got = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), next_text(&mut ws))
            .await
            .expect("the publish from the other host")
    });
    assert_eq!(got.as_deref(), Some(r#"{"from":"b"}"#));

    // A purge on A purges B too.
    for h in [&a, &b] {
        assert_eq!(get(h, "/cached/x").1, "MISS");
        assert_eq!(get(h, "/cached/x").1, "HIT");
    }
    let purged = client()
        .post(a.admin_url("/cache/purge?key=127.0.0.1/cached/x"))
        .send()
        .unwrap();
    assert_eq!(purged.status(), 200);
    eventually("the purge on the other host", || {
        (get(&b, "/cached/x").1 == "MISS").then_some(())
    });
    // A received B's publish, B A's purge.
    for h in [&a, &b] {
        let d = h.admin_json("/diagnostics");
        assert_eq!(d["cluster"]["events_received"], 1, "{d}");
    }
}

#[test]
fn a_shared_rate_limit_holds_its_rate() {
    let limit = "[[plugins]]\nname = \"rate-limit\"\ncapabilities = [\"kv\"]\n\
                 [plugins.config]\nlimit = \"10\"\nwindow_s = \"60\"\n";
    let Fleet {
        a,
        b,
        redis: _redis,
        _backend,
        _origin,
    } = fleet(limit);
    let statuses: Vec<u16> = (0..20)
        .map(|i| get(if i % 2 == 0 { &a } else { &b }, "/").0)
        .collect();
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(admitted, 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 10);
}

#[test]
fn without_redis_the_fleet_degrades_then_recovers() {
    let Fleet {
        mut redis,
        a,
        b,
        _backend,
        _origin,
    } = fleet(COUNTER);
    assert_eq!(get(&a, "/count").2.as_deref(), Some("1"));

    redis.stop();
    // KV calls fail as unavailable; the plugin answers 503 from it.
    let (status, _, body) = eventually("a KV call to fail", || {
        let r = get(&a, "/count");
        (r.0 == 503).then_some(r)
    });
    assert_eq!(status, 503);
    assert!(body.unwrap().contains("Unavailable"));
    eventually("A degraded", || {
        (a.admin_json("/status")["status"] == "degraded").then_some(())
    });
    eventually("B degraded", || {
        (b.admin_json("/diagnostics")["cluster"]["state"] == "degraded").then_some(())
    });
    // The rest is served, and the hub delivers locally.
    assert_eq!(get(&a, "/").2.as_deref(), Some("ok"));
    let rt = runtime();
    let mut ws = rt.block_on(welcomed(&a));
    let (status, body) = publish(&a, r#"{"@": "/lobby", "local": true}"#);
    assert_eq!((status, body.trim()), (200, r#"{"delivered":1}"#));
    assert_eq!(
        rt.block_on(next_text(&mut ws)).as_deref(),
        Some(r#"{"local":true}"#)
    );
    a.assert_logged("cluster_down");

    // Back: both recover by themselves, and state is shared again.
    redis.restart();
    until_up(&a);
    until_up(&b);
    assert_eq!(get(&b, "/count").2.as_deref(), Some("1"));
    assert_eq!(get(&a, "/count").2.as_deref(), Some("2"));
    let (status, _) = publish(&b, r#"{"@": "/lobby", "back": true}"#);
    assert_eq!(status, 200);
    let got = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), next_text(&mut ws))
            .await
            .expect("the publish from the other host")
    });
    assert_eq!(got.as_deref(), Some(r#"{"back":true}"#));
    a.assert_logged("cluster_up");
}

#[test]
fn a_redis_url_that_does_not_parse_is_refused() {
    let (ok, out) = Host::builder()
        .config("[cluster]\nredis = \"http://nowhere\"\n")
        .validate();
    assert!(!ok, "{out}");
    assert!(
        out.contains("cluster.redis") && out.contains("not a Redis URL"),
        "{out}"
    );
}
