//! After a reload, a short window in which the new set must do no worse
//! than the one before it; a set whose requests fail clearly more often
//! (a 5xx, or a plugin failing) is rolled back by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::history::History;
use crate::Active;

/// Requests a set must have served before its failure rate is judged.
pub const MIN_REQUESTS: u64 = 10;
/// How much higher than the previous set's the failure rate may be.
pub const MARGIN: f64 = 0.10;
/// How often the window looks.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// What one set's requests did: counted as each request ends. On a cache
/// line of its own: every request writes it, and the set's other fields
/// are read by every request on every worker.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct SetHealth {
    requests: AtomicU64,
    failures: AtomicU64,
}

impl SetHealth {
    pub fn record(&self, failed: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn figures(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// The failure rate, once there are enough requests to judge it.
    fn rate(&self) -> Option<f64> {
        let (requests, failures) = self.figures();
        (requests >= MIN_REQUESTS).then(|| failures as f64 / requests as f64)
    }
}

/// Why `new` is worse than `old`, if it is.
fn worse(new: &SetHealth, old: &SetHealth) -> Option<String> {
    let rate = new.rate()?;
    let before = old.rate().unwrap_or(0.0);
    (rate > before + MARGIN).then(|| {
        let (requests, failures) = new.figures();
        format!(
            "{failures} of {requests} requests failed (5xx or a plugin failure) on the new set, \
             {:.0}% against {:.0}% before",
            rate * 100.0,
            before * 100.0
        )
    })
}

/// Watches `new` for `window`; rolls back to `old` if it does worse, unless
/// another set has been swapped in meanwhile.
pub async fn watch(
    active: Arc<ArcSwap<Active>>,
    history: Arc<History>,
    id: u64,
    old: Arc<Active>,
    new: Arc<Active>,
    window: Duration,
) {
    let until = Instant::now() + window;
    while Instant::now() < until {
        tokio::time::sleep(LOOK_EVERY).await;
        if !Arc::ptr_eq(&active.load(), &new) {
            return;
        }
        let Some(why) = worse(&new.health, &old.health) else {
            continue;
        };
        let swapped = active.compare_and_swap(&new, old.clone());
        if !Arc::ptr_eq(&swapped, &new) {
            return;
        }
        history.rolled_back(id, "failure_rate", why.clone());
        tracing::warn!(
            event = "reload_rolled_back",
            id,
            rolled_back_version = %new.version,
            serving_version = %old.version,
            reason = "failure_rate",
            "reload rolled back: {why}; the set before it serves again"
        );
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(requests: u64, failures: u64) -> SetHealth {
        let h = SetHealth::default();
        for i in 0..requests {
            h.record(i < failures);
        }
        h
    }

    #[test]
    fn a_clearly_worse_set_is_found() {
        assert!(worse(&health(20, 20), &health(100, 0)).is_some());
        assert!(worse(&health(20, 20), &health(0, 0)).is_some());
        // Too few requests to judge, or no worse than before.
        assert!(worse(&health(9, 9), &health(100, 0)).is_none());
        assert!(worse(&health(100, 50), &health(100, 45)).is_none());
        assert!(worse(&health(100, 1), &health(100, 0)).is_none());
    }
}
