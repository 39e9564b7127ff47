//! Host-wide request counters: requests, responses by status class,
//! latency, plugin failures, uptime. The request path records into them;
//! the admin API reads them, and Prometheus's default registry holds them
//! for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts};

use crate::plugin::FailureKind;

static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);
static REQUESTS: AtomicU64 = AtomicU64::new(0);

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// One counter per status class, resolved once: the request path does no
/// label lookups.
static RESPONSES: LazyLock<[IntCounter; 6]> = LazyLock::new(|| {
    let c = IntCounterVec::new(
        Opts::new("kavro_responses_total", "Responses by status class"),
        &["class"],
    )
    .expect("valid metric");
    let _ = prometheus::default_registry().register(Box::new(c.clone()));
    CLASSES.map(|class| c.with_label_values(&[class]))
});

static LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    let h = Histogram::with_opts(
        HistogramOpts::new("kavro_request_seconds", "Request latency").buckets(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0,
        ]),
    )
    .expect("valid metric");
    let _ = prometheus::default_registry().register(Box::new(h.clone()));
    h
});

static PLUGIN_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = IntCounterVec::new(
        Opts::new(
            "kavro_plugin_failures_total",
            "Plugin failures by plugin and kind",
        ),
        &["plugin", "kind"],
    )
    .expect("valid metric");
    let _ = prometheus::default_registry().register(Box::new(c.clone()));
    c
});

pub fn record_request(status: u16, took: Duration) {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    let class = match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    };
    RESPONSES[class].inc();
    LATENCY.observe(took.as_secs_f64());
}

pub fn record_failure(plugin: &str, kind: FailureKind) {
    PLUGIN_FAILURES
        .with_label_values(&[plugin, kind.as_str()])
        .inc();
}

/// Starts the uptime clock.
pub fn mark_start() {
    LazyLock::force(&STARTED);
}

pub fn uptime() -> Duration {
    STARTED.elapsed()
}

pub fn requests() -> u64 {
    REQUESTS.load(Ordering::Relaxed)
}

/// Responses so far by status class ("1xx" … "5xx", "other").
pub fn responses_by_class() -> impl Iterator<Item = (&'static str, u64)> {
    CLASSES
        .iter()
        .zip(RESPONSES.iter())
        .map(|(c, n)| (*c, n.get()))
}

pub fn latency() -> &'static Histogram {
    &LATENCY
}
