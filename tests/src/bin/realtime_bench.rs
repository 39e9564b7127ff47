//! WebSocket and fleet benchmark (not a test), on loopback, bounded:
//!
//! - passthrough: echo round trips a second, 32 connections, through a
//!   proxy route against straight to the same upstream, interleaved rounds;
//! - hub: one publish fanned out to 1 000 clients, delivery latency;
//! - memory: the host's RSS with 10 000 idle hub clients;
//! - fleet: KV increments a second through two hosts sharing one Redis,
//!   against one host with its in-process store.
//!
//!   ./dev.sh bench-realtime      (BENCH_SECONDS=5 BENCH_ROUNDS=3)

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use kavro_e2e::realtime::Backend;
use kavro_e2e::redis::Redis;
use kavro_e2e::websocket::{connect, next_text, WsUpstream};
use kavro_e2e::{client, Host};
use tokio_tungstenite::tungstenite::Message;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Round trips a second over `conns` connections to `url` for `secs`.
fn echo_rate(rt: &tokio::runtime::Runtime, url: &str, conns: usize, secs: u64) -> f64 {
    rt.block_on(async {
        let mut all = Vec::new();
        for _ in 0..conns {
            all.push(connect(url).await.unwrap());
        }
        let until = Instant::now() + Duration::from_secs(secs);
        let runs = all.into_iter().map(|mut ws| async move {
            let mut n = 0u64;
            while Instant::now() < until {
                ws.send(Message::text("0123456789abcdef")).await.unwrap();
                next_text(&mut ws).await.unwrap();
                n += 1;
            }
            let _ = ws.close(None).await;
            n
        });
        let total: u64 = futures_util::future::join_all(runs).await.iter().sum();
        total as f64 / secs as f64
    })
}

/// nginx proxying WebSockets to `upstream` on `port`, two workers as Kavro
/// has two threads; `None` when nginx is not installed.
fn nginx(
    upstream: std::net::SocketAddr,
    port: u16,
    dir: &std::path::Path,
) -> Option<std::process::Child> {
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 2;\ndaemon off;\npid {0}/nginx.pid;\nerror_log {0}/error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off;\n\
               server {{ listen 127.0.0.1:{port};\n\
                 location / {{ proxy_pass http://{upstream}; proxy_http_version 1.1;\n\
                   proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\";\n\
                   proxy_read_timeout 300s; }} }} }}\n",
            dir.display()
        ),
    )
    .ok()?;
    let child = std::process::Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child)
}

fn passthrough(secs: u64, rounds: u64) {
    let up = WsUpstream::start();
    let config = format!(
        "[upstreams.live]\ntargets = [\"{}\"]\n\n[[routes]]\npath = \"/*\"\nproxy = \"live\"\n",
        up.addr
    );
    let host = Host::builder().config(&config).start();
    let rt = runtime();
    let direct_url = format!("ws://{}/", up.addr);
    let kavro_url = host.url("/").replacen("http://", "ws://", 1);
    let dir = tempfile::tempdir().unwrap();
    let nginx_port = kavro_e2e::free_port();
    let mut peer = nginx(up.addr, nginx_port, dir.path());
    let nginx_url = format!("ws://127.0.0.1:{nginx_port}/");
    let (mut direct, mut kavro, mut via_nginx) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        direct.push(echo_rate(&rt, &direct_url, 32, secs));
        kavro.push(echo_rate(&rt, &kavro_url, 32, secs));
        if peer.is_some() {
            via_nginx.push(echo_rate(&rt, &nginx_url, 32, secs));
        }
    }
    if let Some(mut p) = peer.take() {
        // TERM: the master takes its workers with it (a KILL would not).
        let _ = std::process::Command::new("kill")
            .arg(p.id().to_string())
            .status();
        let _ = p.wait();
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (d, k, n) = (
        median(&mut direct),
        median(&mut kavro),
        median(&mut via_nginx),
    );
    println!(
        "passthrough echo, 32 connections, median of {rounds} interleaved rounds of {secs} s: \
         direct {d:.0}/s, through kavro {k:.0}/s ({:.2}x direct), through nginx {n:.0}/s \
         ({:.2}x direct); kavro / nginx {:.2}",
        k / d,
        n / d,
        k / n
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn hub_config(backend: &Backend) -> String {
    format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\n[[routes]]\npath = \"/live\"\n\
         realtime = {{ backend = \"app\" }}\n",
        backend.addr
    )
}

fn hub_fan_out_and_memory() {
    let backend = Backend::start();
    let host = Host::builder()
        .config(&hub_config(&backend))
        .env("KAVRO_PUBLISH_SECRET", "bench")
        .start();
    let url = host.url("/live").replacen("http://", "ws://", 1);
    let rt = runtime();
    let before = rss_kib(host.pid());
    let mut clients = Vec::new();
    for _ in 0..100 {
        let batch = rt.block_on(futures_util::future::join_all((0..100).map(|_| async {
            let mut ws = connect(&url).await.unwrap();
            next_text(&mut ws).await.unwrap();
            ws
        })));
        clients.extend(batch);
        if clients.len() == 1000 {
            let mut latencies = Vec::new();
            for _ in 0..20 {
                let started = Instant::now();
                let c = client();
                let r = c
                    .post(host.url("/publish"))
                    .header("authorization", "Bearer bench")
                    .body(r#"{"@": "/lobby", "t": 1}"#)
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200);
                let reads = clients.iter_mut().map(|ws| async move {
                    next_text(ws).await.unwrap();
                    started.elapsed()
                });
                latencies.extend(rt.block_on(futures_util::future::join_all(reads)));
            }
            latencies.sort();
            let n = latencies.len();
            println!(
                "hub: 20 publishes to 1 000 clients: delivery p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                latencies[n / 2].as_secs_f64() * 1e3,
                latencies[n * 99 / 100].as_secs_f64() * 1e3,
                latencies[n - 1].as_secs_f64() * 1e3
            );
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib(host.pid());
    println!(
        "memory: {} idle hub clients: host RSS {:.0} MiB (before {:.0} MiB, {:.1} KiB a client)",
        clients.len(),
        after as f64 / 1024.0,
        before as f64 / 1024.0,
        (after - before) as f64 / clients.len() as f64
    );
}

/// KV increments a second from 32 client threads for `secs`.
fn increments(hosts: &[&Host], secs: u64) -> f64 {
    let until = Instant::now() + Duration::from_secs(secs);
    let total: u64 = std::thread::scope(|s| {
        let runs: Vec<_> = (0..32)
            .map(|i| {
                s.spawn(move || {
                    let c = client();
                    let mut n = 0u64;
                    while Instant::now() < until {
                        let h = hosts[(i + n as usize) % hosts.len()];
                        let r = c.get(h.url("/count")).send().unwrap();
                        assert_eq!(r.status(), 200);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).sum()
    });
    total as f64 / secs as f64
}

fn fleet(secs: u64) {
    let counter = "[[routes]]\npath = \"/*\"\nrespond = { body = \"ok\" }\n\n\
                   [[plugins]]\nname = \"counter\"\ncapabilities = [\"kv\"]\n";
    let local = Host::builder()
        .plugin("counter", "counter")
        .config(counter)
        .start();
    let one = increments(&[&local], secs);
    drop(local);
    let redis = Redis::start();
    let config = format!("[cluster]\nredis = \"{}\"\n\n{counter}", redis.url());
    let start = || {
        let h = Host::builder()
            .plugin("counter", "counter")
            .config(&config)
            .start();
        kavro_e2e::eventually("the cluster up", || {
            (h.admin_json("/status")["status"] == "ok").then_some(())
        });
        h
    };
    let (a, b) = (start(), start());
    let two = increments(&[&a, &b], secs);
    let peek = client()
        .get(a.url("/count?peek"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    println!(
        "fleet: KV increments, 32 clients, {secs} s: one host in-process {one:.0}/s; \
         two hosts on one Redis {two:.0}/s (counter {peek}, exact)"
    );
}

fn main() {
    let secs = env("BENCH_SECONDS", 5);
    let rounds = env("BENCH_ROUNDS", 3);
    passthrough(secs, rounds);
    hub_fan_out_and_memory();
    fleet(secs);
}
