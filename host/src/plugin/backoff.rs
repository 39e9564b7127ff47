//! A plugin that fails on every request must not melt the host. Each
//! failure that costs an instance (a trap, a deadline, a memory limit, an
//! instantiation that fails) means a new instance for the next request,
//! which for a Python or JavaScript plugin is a millisecond or more of CPU.
//! After [`THRESHOLD`] such failures in a row, requests that would need a
//! new instance get the plugin's failure policy at once, for a period that
//! starts at [`FIRST`]. When it is over, one request tries the plugin while
//! the others are still refused for another period; if the try fails, the
//! period doubles, up to [`LONGEST`]. One success ends it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failures in a row, each costing the instance, that start a back-off.
pub const THRESHOLD: u32 = 5;
pub const FIRST: Duration = Duration::from_millis(100);
pub const LONGEST: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Backoff {
    /// Failures in a row that cost an instance; read on every release.
    consecutive: AtomicU32,
    /// Times a back-off started, for the operator.
    engaged: AtomicU64,
    /// Once one started: the current period, its end, and whether a try
    /// was let through since.
    state: Mutex<Option<Period>>,
}

#[derive(Debug, Clone, Copy)]
struct Period {
    length: Duration,
    until: Instant,
    trying: bool,
}

/// What the operator reads on `GET /plugins`.
#[derive(Debug, serde::Serialize)]
pub struct Snapshot {
    pub consecutive_failures: u32,
    /// Milliseconds left in the current back-off, if one is under way.
    pub remaining_ms: Option<u64>,
    pub engaged: u64,
}

impl Backoff {
    /// Whether a request may have a new instance now. Once a period is
    /// over, one request is let through to try, and the others wait out
    /// another period (so a busy host does not build an instance for each
    /// of them, and a try that never returns does not hold the plugin off).
    pub fn admits(&self) -> bool {
        if self.consecutive.load(Ordering::Relaxed) < THRESHOLD {
            return true;
        }
        let mut state = self.state.lock();
        match state.as_mut() {
            Some(p) if p.until > Instant::now() => false,
            Some(p) => {
                p.until = Instant::now() + p.length;
                p.trying = true;
                true
            }
            None => true,
        }
    }

    /// A call or an instantiation failed and the instance is lost.
    pub fn failed(&self, plugin: &str) {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if n < THRESHOLD {
            return;
        }
        let mut state = self.state.lock();
        let now = Instant::now();
        let length = match *state {
            None => FIRST,
            // A failed try doubles it; failures of requests that were under
            // way when it started do not.
            Some(p) if p.trying || p.until <= now => (p.length * 2).min(LONGEST),
            Some(_) => return,
        };
        *state = Some(Period {
            length,
            until: now + length,
            trying: false,
        });
        self.engaged.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            plugin,
            failures_in_a_row = n,
            "plugin keeps failing and losing its instance: its failure policy answers \
             without a new instance for {} ms (doubling while it keeps failing; one \
             success ends it)",
            length.as_millis()
        );
    }

    /// A call succeeded: the plugin works again.
    pub fn succeeded(&self) {
        // One load on the common path: nothing to reset.
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
            *self.state.lock() = None;
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let remaining_ms = self
            .state
            .lock()
            .and_then(|p| p.until.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
            .map(|d| d.as_millis() as u64);
        Snapshot {
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            remaining_ms,
            engaged: self.engaged.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_after_the_threshold_doubles_and_ends_on_success() {
        let b = Backoff::default();
        for _ in 0..THRESHOLD - 1 {
            b.failed("p");
        }
        assert!(b.admits());
        b.failed("p");
        assert!(!b.admits());
        let left = b.snapshot().remaining_ms.unwrap();
        assert!(left <= 100 && left > 50, "{left}");
        // More failures during it do not lengthen it.
        b.failed("p");
        assert!(b.snapshot().remaining_ms.unwrap() <= 100);
        assert_eq!(b.snapshot().engaged, 1);

        // Over: one try, the others still refused; the try failing doubles
        // the period.
        b.state.lock().as_mut().unwrap().until = Instant::now();
        assert!(b.admits());
        assert!(!b.admits());
        b.failed("p");
        assert!(b.snapshot().remaining_ms.unwrap() > 100);
        assert_eq!(b.snapshot().engaged, 2);

        b.succeeded();
        assert!(b.admits());
        let s = b.snapshot();
        assert_eq!((s.consecutive_failures, s.remaining_ms), (0, None));
    }
}
