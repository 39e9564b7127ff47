//! Per-request cost of a plugin's phases, in process, without the network:
//! check out an instance, call every phase it exports on a small request,
//! response and body, give the instance back. Reports the cost per request
//! (the median of ten batch means) with a warm (pooled) instance and with a
//! fresh instance per request.
//!
//!   cargo run --release --example phase_cost -- PLUGIN.wasm [ITERATIONS] [key=value ...]
//!
//! `KAVRO_CACHE_DIR` keeps compiled artifacts between runs.
//! `PHASE_COST_ONLY=pooled` (or `request`) measures one of the two, for
//! counting instructions (`perf stat -e instructions:u`) at two iteration
//! counts: the difference is the cost per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kavro_host::config::Config;
use kavro_host::config::{Isolation, PluginSettings};
use kavro_host::plugin::artifacts::Urgency;
use kavro_host::plugin::bindings::types::Completion;
use kavro_host::plugin::caps::{Capability, Shared};
use kavro_host::plugin::engine::Runtime;
use kavro_host::plugin::{Phase, Plugin, RequestInfo};
use pingora_http::{RequestHeader, ResponseHeader};

fn request() -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/products/42?color=red", None).unwrap();
    for (k, v) in [
        ("host", "shop.example.com"),
        ("user-agent", "bench/1.0"),
        ("accept", "text/html"),
        ("cookie", "session=abc123; canary=no"),
    ] {
        req.insert_header(k, v).unwrap();
    }
    req
}

/// One request's plugin work. The heads are built once by the caller and
/// reused, as the pipeline's heads already exist when a plugin runs: what
/// is timed is the plugin's cost, not building requests.
async fn one_request(
    plugin: &Plugin,
    seq: u64,
    info: &Arc<RequestInfo>,
    req: &mut RequestHeader,
    resp: &mut ResponseHeader,
) {
    let deadline = Duration::from_millis(100);
    let mut inst = plugin.checkout().await.expect("instance");
    inst.set_request_info(Some(info.clone()));
    let p = plugin.phases;
    if p[Phase::Prime] {
        inst.prime(seq, req, deadline).await.expect("prime");
    }
    if p[Phase::Prepare] {
        inst.prepare(seq, req, deadline).await.expect("prepare");
    }
    if p[Phase::Present] {
        let body = bytes::Bytes::from_static(b"<html><body>hello</body></html>");
        inst.present(seq, req, resp, &body, &[], true, deadline)
            .await
            .expect("present");
    }
    if p[Phase::Package] {
        inst.package(seq, req, resp, deadline)
            .await
            .expect("package");
    }
    if p[Phase::Post] {
        let done = Completion {
            status: 200,
            duration_us: 100,
            bytes_sent: 1024,
            upstream: Some("app".into()),
            error: None,
        };
        inst.post(seq, req, resp, &done, deadline)
            .await
            .expect("post");
    }
    plugin.give_back(inst);
}

/// Batches a measurement is split into. Each reports its mean, and the
/// median batch is the result: a batch in which another process took the
/// CPU (a shared 2-core machine) does not move it, while costs that recur
/// (an instance replaced every few thousand requests) stay in every batch.
const BATCHES: u64 = 10;

async fn measure(plugin: &Plugin, iterations: u64) -> Duration {
    let info = Arc::new(RequestInfo {
        id: "0123456789abcdef".into(),
        client_ip: "127.0.0.1".into(),
        scheme: "http",
    });
    let mut req = request();
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("content-type", "text/html").unwrap();
    for seq in 0..iterations / 10 {
        one_request(plugin, seq, &info, &mut req, &mut resp).await;
    }
    let per_batch = (iterations / BATCHES).max(1);
    let mut means = Vec::new();
    let mut seq = iterations / 10;
    for _ in 0..BATCHES {
        let start = Instant::now();
        for _ in 0..per_batch {
            one_request(plugin, seq, &info, &mut req, &mut resp).await;
            seq += 1;
        }
        means.push(start.elapsed() / per_batch as u32);
    }
    means.sort();
    means[means.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .expect("usage: phase_cost PLUGIN.wasm [ITERATIONS] [key=value ...]");
    let iterations: u64 = args.next().map_or(20_000, |n| n.parse().expect("a number"));
    let values = args
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let runtime = Runtime::get()?;
    let bytes = std::fs::read(&file)?;
    // Repeated runs reuse compiled artifacts from KAVRO_CACHE_DIR, if set.
    let cache = std::env::var_os("KAVRO_CACHE_DIR").map(std::path::PathBuf::from);
    let compiled = Plugin::compile(&runtime, &bytes, cache.as_deref(), Urgency::Start)?;
    let config = Config::load(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let shared = Shared::new(&config);
    let only = std::env::var("PHASE_COST_ONLY").ok();
    for isolation in [Isolation::Pooled, Isolation::Request] {
        let name = format!("{isolation:?}").to_ascii_lowercase();
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        let settings = PluginSettings {
            isolation,
            capabilities: [Capability::Kv, Capability::Metrics].into(),
            values: std::collections::BTreeMap::clone(&values),
            ..PluginSettings::default()
        };
        let plugin = rt.block_on(Plugin::link(
            &runtime,
            "bench",
            file.as_ref(),
            compiled.clone(),
            settings,
            &Default::default(),
            &shared,
        ))?;
        let n = if isolation == Isolation::Pooled {
            iterations
        } else {
            iterations / 10
        };
        let per = rt.block_on(measure(&plugin, n));
        println!(
            "{file} [{}] {:?}: {:.2} us per request",
            plugin.phases.names().join(","),
            isolation,
            per.as_secs_f64() * 1e6
        );
    }
    Ok(())
}
