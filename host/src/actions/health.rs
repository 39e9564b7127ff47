//! Passive health of an upstream's targets: a target that fails (refuses
//! or drops connections, or answers 5xx where the upstream counts those) a
//! number of times in a row is ejected for a period that doubles while it
//! keeps failing; when the period ends one request tries it again. A
//! target's health is kept across reloads, as long as a config names it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::Eject;

/// One target of one upstream.
#[derive(Debug)]
pub struct TargetHealth {
    pub upstream: String,
    pub target: String,
    /// Failures in a row; read without the lock on the success path.
    consecutive: AtomicU32,
    state: Mutex<Ejection>,
}

#[derive(Debug, Default)]
struct Ejection {
    /// Ejections in a row, each twice as long as the one before.
    count: u32,
    until: Option<Instant>,
    /// Until when the request trying the target after its ejection has
    /// it to itself: one that never reports back (cancelled, or lost to a
    /// read error) does not keep the target out for good.
    trial: Option<Instant>,
}

/// Targets by (upstream, target).
type Book = HashMap<(String, String), Weak<TargetHealth>>;

/// Every target's health, so that a reload that keeps a target keeps what
/// is known about it.
static BOOK: LazyLock<Mutex<Book>> = LazyLock::new(Default::default);

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
            consecutive: AtomicU32::new(0),
            state: Mutex::new(Ejection::default()),
        });
        book.insert(key, Arc::downgrade(&h));
        h
    }

    /// Whether a request may go to this target now. When an ejection has
    /// ended, one request is let through to try it; the others keep away
    /// until that one succeeds or fails, or until `trial` has passed.
    pub fn available(&self, trial: Duration) -> bool {
        if self.consecutive.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let mut s = self.state.lock();
        let now = Instant::now();
        match s.until {
            None => true,
            Some(until) if now < until => false,
            Some(_) if s.trial.is_some_and(|t| now < t) => false,
            Some(_) => {
                s.trial = Some(now + trial);
                true
            }
        }
    }

    /// Whether the target is in rotation, without taking a trial: for
    /// callers that do not report how their request went.
    pub fn in_rotation(&self) -> bool {
        self.consecutive.load(Ordering::Relaxed) == 0
            || self.state.lock().until.is_none_or(|u| Instant::now() >= u)
    }

    /// A request to the target went well.
    pub fn succeeded(&self) {
        if self.consecutive.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.consecutive.store(0, Ordering::Relaxed);
        let was_out = std::mem::take(&mut *self.state.lock()).until.is_some();
        if was_out {
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
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let mut s = self.state.lock();
        if eject.failures == 0 {
            // Ejection turned off (by a reload, say): nothing stays out.
            *s = Ejection::default();
            return;
        }
        let trial_failed = s.trial.is_some();
        if n < eject.failures && !trial_failed {
            return;
        }
        if s.until.is_some_and(|u| Instant::now() < u) {
            // Already out: a request that chose it before the ejection.
            return;
        }
        let period = eject
            .base
            .saturating_mul(1u32 << s.count.min(20))
            .min(eject.max);
        s.count = s.count.saturating_add(1);
        s.until = Some(Instant::now() + period);
        s.trial = None;
        drop(s);
        tracing::warn!(
            upstream = %self.upstream,
            target = %self.target,
            failures = n,
            ejected_ms = period.as_millis() as u64,
            "upstream target ejected"
        );
    }

    /// What is left of the target's ejection.
    pub fn ejected_for(&self) -> Duration {
        self.state.lock().until.map_or(Duration::ZERO, |u| {
            u.saturating_duration_since(Instant::now())
        })
    }

    /// For /diagnostics.
    pub fn report(&self) -> serde_json::Value {
        let s = self.state.lock();
        let left = s
            .until
            .map(|u| u.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::ZERO);
        let state = match s.until {
            Some(_) if !left.is_zero() => "ejected",
            Some(_) => "on trial",
            None => "up",
        };
        serde_json::json!({
            "target": self.target,
            "state": state,
            "consecutive_failures": self.consecutive.load(Ordering::Relaxed),
            "ejections": s.count,
            "ejected_remaining_ms": left.as_millis() as u64,
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
        assert!(!h.available(TRIAL));
        std::thread::sleep(Duration::from_millis(50));
        assert!(h.available(TRIAL), "the period ended: one trial");
        assert!(!h.available(TRIAL), "only one");
        h.failed(&e);
        assert!(
            !h.available(TRIAL),
            "a failed trial ejects again, for longer"
        );
        std::thread::sleep(Duration::from_millis(50));
        assert!(!h.available(TRIAL), "the second ejection is twice as long");
        std::thread::sleep(Duration::from_millis(40));
        assert!(h.available(TRIAL));
        h.succeeded();
        assert!(h.available(TRIAL) && h.available(TRIAL));
        assert_eq!(h.report()["state"], "up");
    }

    #[test]
    fn a_trial_that_never_reports_back_lapses() {
        let h = TargetHealth::of("unit3", "c:1");
        let e = eject(1);
        h.failed(&e);
        std::thread::sleep(Duration::from_millis(45));
        let short = Duration::from_millis(20);
        assert!(h.available(short), "the trial");
        assert!(!h.available(short), "while it runs");
        std::thread::sleep(Duration::from_millis(25));
        assert!(h.available(short), "another trial once it lapsed");
    }

    #[test]
    fn the_same_target_keeps_its_health_and_zero_never_ejects() {
        let a = TargetHealth::of("unit2", "b:1");
        assert!(Arc::ptr_eq(&a, &TargetHealth::of("unit2", "b:1")));
        let e = eject(0);
        for _ in 0..10 {
            a.failed(&e);
        }
        assert!(a.available(TRIAL));
    }
}
