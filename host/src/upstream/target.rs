//! One target of one upstream: its health, passive (a target that fails
//! a number of times in a row is ejected for a period that doubles while
//! it keeps failing, then tried again by one request, see `crate::streak`)
//! and active (`probe`), and the requests under way on it. What is known
//! about a target is kept across reloads, as long as a config names it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::Eject;
use crate::streak::{Lease, Schedule, Streak};

/// One target of one upstream.
#[derive(Debug)]
pub struct Target {
    pub upstream: String,
    pub target: String,
    streak: Streak,
    /// The active checks' verdict: false once `fall` checks in a row
    /// failed, true again after `rise` passed.
    probed_up: AtomicBool,
    /// Checks in a row with the same outcome, and that outcome.
    probe_run: Mutex<(bool, u32)>,
    inflight: AtomicUsize,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub probe_failures: AtomicU32,
}

/// A request under way on a target; dropping it ends it.
#[derive(Debug)]
pub struct Busy(Arc<Target>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Targets by (upstream, target).
type Book = HashMap<(String, String), Weak<Target>>;

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

impl Target {
    /// The health of `target` of `upstream`: the one already known, or a new one.
    pub fn of(upstream: &str, target: &str) -> Arc<Target> {
        let mut book = BOOK.lock();
        book.retain(|_, h| h.strong_count() > 0);
        let key = (upstream.to_string(), target.to_string());
        if let Some(h) = book.get(&key).and_then(Weak::upgrade) {
            return h;
        }
        let h = Arc::new(Target {
            upstream: upstream.to_string(),
            target: target.to_string(),
            streak: Streak::default(),
            probed_up: AtomicBool::new(true),
            probe_run: Mutex::new((true, 0)),
            inflight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            probe_failures: AtomicU32::new(0),
        });
        book.insert(key, Arc::downgrade(&h));
        h
    }

    /// Whether a request may go to this target now. When an ejection has
    /// ended, one request is let through to try it; the others keep away
    /// until that one succeeds or fails, or until `trial` has passed.
    pub fn available(&self, trial: Duration) -> bool {
        self.probed_up() && self.streak.admits(Lease::For(trial))
    }

    /// Whether the target is in rotation, without taking a trial: for
    /// callers that do not report how their request went.
    pub fn in_rotation(&self) -> bool {
        self.probed_up() && !self.streak.is_out()
    }

    /// Could [`Target::available`] let a request through now? Takes no
    /// trial: for weighing targets before choosing one.
    pub fn could_take(&self) -> bool {
        self.probed_up() && self.streak.would_admit()
    }

    /// Whether its active checks (if any) pass.
    pub fn probed_up(&self) -> bool {
        self.probed_up.load(Ordering::Relaxed)
    }

    /// Counts a request as under way on the target until the guard drops.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// Requests under way on it now.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// An active check's outcome; `fall` failures in a row take the target
    /// down, `rise` passes in a row bring it back.
    pub fn probed(&self, passed: bool, fall: u32, rise: u32, why: &str) {
        if !passed {
            self.probe_failures.fetch_add(1, Ordering::Relaxed);
        }
        let mut run = self.probe_run.lock();
        *run = match *run {
            (outcome, n) if outcome == passed => (passed, n.saturating_add(1)),
            _ => (passed, 1),
        };
        let up = self.probed_up();
        if up && !passed && run.1 >= fall {
            self.probed_up.store(false, Ordering::Relaxed);
            tracing::warn!(
                event = "upstream_down",
                upstream = %self.upstream,
                target = %self.target,
                checks = run.1,
                "upstream target is down: {why}"
            );
        } else if !up && passed && run.1 >= rise {
            self.probed_up.store(true, Ordering::Relaxed);
            // A target that passes its checks is in rotation again, whatever
            // its requests did before.
            self.streak.succeeded();
            tracing::info!(
                event = "upstream_up",
                upstream = %self.upstream,
                target = %self.target,
                checks = run.1,
                "upstream target is up: its checks pass"
            );
        }
    }

    /// No active checks (a reload removed them): only the passive health counts.
    pub fn unprobed(&self) {
        *self.probe_run.lock() = (true, 0);
        self.probed_up.store(true, Ordering::Relaxed);
    }

    /// A request to the target went well.
    pub fn succeeded(&self) {
        if self.streak.succeeded() {
            tracing::info!(
                event = "upstream_up",
                upstream = %self.upstream,
                target = %self.target,
                "upstream target is back in rotation"
            );
        }
    }

    /// A request to the target failed; past `eject.failures` in a row (or
    /// when its trial after an ejection fails) the target is ejected.
    pub fn failed(&self, eject: &Eject) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Some(started) = self.streak.failed(&schedule(eject)) {
            tracing::warn!(
                event = "upstream_down",
                upstream = %self.upstream,
                target = %self.target,
                failures = started.failures,
                ejected_ms = started.length.as_millis() as u64,
                "upstream target ejected"
            );
        }
    }

    /// Times it was ejected.
    pub fn ejections(&self) -> u64 {
        self.streak.engaged()
    }

    /// What is left of the target's ejection.
    pub fn ejected_for(&self) -> Duration {
        self.streak.remaining().unwrap_or(Duration::ZERO)
    }

    /// For /diagnostics.
    pub fn report(&self) -> serde_json::Value {
        let left = self.streak.remaining();
        let state = match left {
            _ if !self.probed_up() => "down",
            Some(_) => "ejected",
            None if self.streak.on_trial() => "on trial",
            None => "up",
        };
        serde_json::json!({
            "target": self.target,
            "state": state,
            "inflight": self.inflight(),
            "requests": self.requests.load(Ordering::Relaxed),
            "failures": self.failures.load(Ordering::Relaxed),
            "check_failures": self.probe_failures.load(Ordering::Relaxed),
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
        let h = Target::of("unit", "a:1");
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
        let a = Target::of("unit2", "b:1");
        assert!(Arc::ptr_eq(&a, &Target::of("unit2", "b:1")));
        assert!(!Arc::ptr_eq(&a, &Target::of("unit2", "c:1")));
    }
}
