//! Passive health of an upstream's targets: a target that fails (refuses
//! a connection, drops or times out one it made, or answers 5xx where the
//! upstream counts those) a number of times in a row is ejected for a
//! period that doubles while it keeps failing; when the period ends one
//! request tries it again (`crate::streak`). A target's health is kept
//! across reloads, as long as a config names it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::Eject;
use crate::streak::{Lease, Schedule, Streak};

/// One target of one upstream.
#[derive(Debug)]
pub struct TargetHealth {
    pub upstream: String,
    pub target: String,
    streak: Streak,
}

/// Targets by (upstream, target).
type Book = HashMap<(String, String), Weak<TargetHealth>>;

/// Every target's health, so that a reload that keeps a target keeps what
/// is known about it.
static BOOK: LazyLock<Mutex<Book>> = LazyLock::new(Default::default);

fn schedule(eject: &Eject) -> Schedule {
    Schedule {
        threshold: eject.failures,
        first: eject.base,
        longest: eject.max,
    }
}

impl TargetHealth {
    /// The health of `target` of `upstream`: the one already known, or a new one.
    pub fn of(upstream: &str, target: &str) -> Arc<TargetHealth> {
        let mut book = BOOK.lock();
        book.retain(|_, h| h.strong_count() > 0);
        let key = (upstream.to_string(), target.to_string());
        if let Some(h) = book.get(&key).and_then(Weak::upgrade) {
            return h;
        }
        let h = Arc::new(TargetHealth {
            upstream: upstream.to_string(),
            target: target.to_string(),
            streak: Streak::default(),
        });
        book.insert(key, Arc::downgrade(&h));
        h
    }

    /// Whether a request may go to this target now. When an ejection has
    /// ended, one request is let through to try it; the others keep away
    /// until that one succeeds or fails, or until `trial` has passed.
    pub fn available(&self, trial: Duration) -> bool {
        self.streak.admits(Lease::For(trial))
    }

    /// Whether the target is in rotation, without taking a trial: for
    /// callers that do not report how their request went.
    pub fn in_rotation(&self) -> bool {
        !self.streak.is_out()
    }

    /// A request to the target went well.
    pub fn succeeded(&self) {
        if self.streak.succeeded() {
            tracing::info!(
                upstream = %self.upstream,
                target = %self.target,
                "upstream target is back in rotation"
            );
        }
    }

    /// A request to the target failed; past `eject.failures` in a row (or
    /// when its trial after an ejection fails) the target is ejected.
    pub fn failed(&self, eject: &Eject) {
        if let Some(started) = self.streak.failed(&schedule(eject)) {
            tracing::warn!(
                upstream = %self.upstream,
                target = %self.target,
                failures = started.failures,
                ejected_ms = started.length.as_millis() as u64,
                "upstream target ejected"
            );
        }
    }

    /// What is left of the target's ejection.
    pub fn ejected_for(&self) -> Duration {
        self.streak.remaining().unwrap_or(Duration::ZERO)
    }

    /// For /diagnostics.
    pub fn report(&self) -> serde_json::Value {
        let left = self.streak.remaining();
        let state = match left {
            Some(_) => "ejected",
            None if self.streak.on_trial() => "on trial",
            None => "up",
        };
        serde_json::json!({
            "target": self.target,
            "state": state,
            "consecutive_failures": self.streak.consecutive(),
            "ejections": self.streak.engaged(),
            "ejected_remaining_ms": left.unwrap_or_default().as_millis() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIAL: Duration = Duration::from_secs(60);

    fn eject(failures: u32) -> Eject {
        Eject {
            failures,
            on_5xx: false,
            base: Duration::from_millis(40),
            max: Duration::from_millis(100),
        }
    }

    #[test]
    fn ejected_after_failures_in_a_row_then_tried_by_one_request() {
        let h = TargetHealth::of("unit", "a:1");
        let e = eject(2);
        h.failed(&e);
        assert!(h.available(TRIAL), "one failure is not enough");
        h.succeeded();
        h.failed(&e);
        assert!(h.available(TRIAL), "a success resets the count");
        h.failed(&e);
        assert!(!h.available(TRIAL) && !h.in_rotation());
        assert_eq!(h.report()["state"], "ejected");
        std::thread::sleep(Duration::from_millis(50));
        assert!(h.in_rotation());
        assert!(h.available(TRIAL), "the period ended: one trial");
        assert!(!h.available(TRIAL), "only one");
        h.succeeded();
        assert!(h.available(TRIAL) && h.available(TRIAL));
        assert_eq!(h.report()["state"], "up");
    }

    #[test]
    fn the_same_target_keeps_its_health() {
        let a = TargetHealth::of("unit2", "b:1");
        assert!(Arc::ptr_eq(&a, &TargetHealth::of("unit2", "b:1")));
        assert!(!Arc::ptr_eq(&a, &TargetHealth::of("unit2", "c:1")));
    }
}
