//! What one plugin version has done: calls, failures by kind, call time,
//! instances. Lock-free counters, read by the admin API.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use prometheus::core::Metric;
use prometheus::{Histogram, HistogramOpts};

use super::{Failure, FailureKind, Phase};

/// Call-time buckets in seconds: 1 µs to 1 s.
const CALL_BUCKETS: &[f64] = &[
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1,
    0.2, 0.5, 1.0,
];

#[derive(Debug)]
pub struct PluginStats {
    pub calls: AtomicU64,
    /// Calls under way now.
    pub running: AtomicUsize,
    /// Calls that ran long and finished on the slow lane.
    pub slow_calls: AtomicU64,
    failures: [AtomicU64; FailureKind::ALL.len()],
    pub instances_live: AtomicUsize,
    pub instances_created: AtomicU64,
    /// Instances replaced because their memory grew past `max_growth`.
    pub instances_grown: AtomicU64,
    /// Wall time of each phase call; not registered with Prometheus (a
    /// plugin version comes and goes), read for /diagnostics.
    pub call_seconds: Histogram,
    /// The latest failure, as the operator reads it on `GET /plugins`.
    last_error: Mutex<Option<LastError>>,
}

/// A plugin's latest failure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LastError {
    pub phase: &'static str,
    pub kind: &'static str,
    /// What went wrong: the trap, or what the plugin reported (a panic's
    /// message, an exception's traceback).
    pub detail: String,
    pub request: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

impl Default for PluginStats {
    fn default() -> Self {
        PluginStats {
            calls: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            slow_calls: AtomicU64::new(0),
            failures: Default::default(),
            instances_live: AtomicUsize::new(0),
            instances_created: AtomicU64::new(0),
            instances_grown: AtomicU64::new(0),
            call_seconds: Histogram::with_opts(
                HistogramOpts::new("kavro_plugin_call_seconds", "Plugin phase call time")
                    .buckets(CALL_BUCKETS.to_vec()),
            )
            .expect("valid buckets"),
            last_error: Mutex::new(None),
        }
    }
}

impl PluginStats {
    /// Counts a failure; the latest one that says what went wrong (not a
    /// back-off) is kept for the operator.
    pub fn failed(&self, phase: Phase, f: &Failure, request: &str) {
        self.failures[f.kind as usize].fetch_add(1, Ordering::Relaxed);
        if f.kind == FailureKind::Backoff {
            return;
        }
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = LastError {
            phase: phase.name(),
            kind: f.kind.as_str(),
            detail: f.detail.clone(),
            request: request.to_string(),
            at,
        };
        *self.last_error.lock() = Some(last);
    }

    pub fn last_error(&self) -> Option<LastError> {
        self.last_error.lock().clone()
    }

    pub fn failures(&self, kind: FailureKind) -> u64 {
        self.failures[kind as usize].load(Ordering::Relaxed)
    }

    pub fn failures_total(&self) -> u64 {
        FailureKind::ALL.iter().map(|k| self.failures(*k)).sum()
    }
}

/// The `q` quantile (0..1) of a histogram, in seconds, interpolated within
/// its bucket; `None` before any observation.
pub fn quantile(h: &Histogram, q: f64) -> Option<f64> {
    let m = h.metric();
    let hist = m.get_histogram();
    let total = hist.get_sample_count();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for b in hist.get_bucket() {
        let (upper, count) = (b.upper_bound(), b.cumulative_count());
        if count as f64 >= rank {
            let inside = (count - below).max(1) as f64;
            return Some(
                lower + (upper - lower) * ((rank - below as f64) / inside).clamp(0.0, 1.0),
            );
        }
        (lower, below) = (upper, count);
    }
    // Beyond the last bucket: report its bound, the most that is known.
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_buckets() {
        let s = PluginStats::default();
        assert_eq!(quantile(&s.call_seconds, 0.5), None);
        for _ in 0..90 {
            s.call_seconds.observe(3e-6);
        }
        for _ in 0..10 {
            s.call_seconds.observe(0.3);
        }
        let p50 = quantile(&s.call_seconds, 0.5).unwrap();
        assert!((2e-6..=5e-6).contains(&p50), "{p50}");
        let p99 = quantile(&s.call_seconds, 0.99).unwrap();
        assert!((0.2..=0.5).contains(&p99), "{p99}");
        let failure = |kind, detail: &str| Failure {
            kind,
            detail: detail.into(),
        };
        assert!(s.last_error().is_none());
        s.failed(Phase::Prime, &failure(FailureKind::Deadline, "slow"), "r1");
        s.failed(Phase::Post, &failure(FailureKind::Trap, "first"), "r2");
        s.failed(Phase::Package, &failure(FailureKind::Trap, "second"), "r3");
        assert_eq!(s.failures(FailureKind::Trap), 2);
        assert_eq!(s.failures_total(), 3);
        let last = s.last_error().unwrap();
        assert_eq!((last.phase, last.kind), ("package", "trap"));
        assert_eq!(
            (last.detail.as_str(), last.request.as_str()),
            ("second", "r3")
        );
    }
}
