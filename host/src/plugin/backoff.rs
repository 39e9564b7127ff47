//! A plugin that fails on every request must not melt the host. Each
//! failure that costs an instance (a trap, a deadline, a memory limit, an
//! instantiation that fails) means a new instance for the next request,
//! which for a Python or JavaScript plugin is a millisecond or more of CPU.
//! After [`THRESHOLD`] such failures in a row, requests that would need a
//! new instance get the plugin's failure policy at once, for a period that
//! starts at [`FIRST`]. When it is over, one request tries the plugin while
//! the others are still refused for another period; if the try fails, the
//! period doubles, up to [`LONGEST`]. One success ends it.

use std::time::Duration;

use crate::streak::{Lease, Schedule, Streak};

/// Failures in a row, each costing the instance, that start a back-off.
pub const THRESHOLD: u32 = 5;
pub const FIRST: Duration = Duration::from_millis(100);
pub const LONGEST: Duration = Duration::from_secs(30);

const SCHEDULE: Schedule = Schedule {
    threshold: THRESHOLD,
    first: FIRST,
    longest: LONGEST,
};

#[derive(Debug, Default)]
pub struct Backoff(Streak);

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
        self.0.admits(Lease::Period)
    }

    /// A call or an instantiation failed and the instance is lost.
    pub fn failed(&self, plugin: &str) {
        if let Some(started) = self.0.failed(&SCHEDULE) {
            tracing::warn!(
                plugin,
                failures_in_a_row = started.failures,
                "plugin keeps failing and losing its instance: its failure policy answers \
                 without a new instance for {} ms (doubling while it keeps failing; one \
                 success ends it)",
                started.length.as_millis()
            );
        }
    }

    /// A call succeeded: the plugin works again.
    pub fn succeeded(&self) {
        self.0.succeeded();
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            consecutive_failures: self.0.consecutive(),
            remaining_ms: self.0.remaining().map(|d| d.as_millis() as u64),
            engaged: self.0.engaged(),
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
        b.0.end_period();
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
