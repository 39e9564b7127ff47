//! Failures in a row that take something out of use for a while: after a
//! threshold of them it is out for a period that doubles while it keeps
//! failing, up to a longest; when a period ends one caller gets a trial
//! while the others stay out until the trial reports or its lease lapses;
//! one success ends it. A plugin that keeps losing its instances
//! (`plugin::backoff`) and an upstream target that keeps failing
//! (`upstream::target`) both follow it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// When a streak takes its subject out, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Failures in a row that start a period; 0 never does.
    pub threshold: u32,
    pub first: Duration,
    pub longest: Duration,
}

/// How long a trial has its subject to itself.
#[derive(Debug, Clone, Copy)]
pub enum Lease {
    /// Another period as long as the last.
    Period,
    For(Duration),
}

#[derive(Debug, Default)]
pub struct Streak {
    /// Failures in a row; read without the lock on the common path.
    consecutive: AtomicU32,
    /// Periods started, for the operator.
    engaged: AtomicU64,
    state: Mutex<Option<Period>>,
}

#[derive(Debug, Clone, Copy)]
struct Period {
    length: Duration,
    until: Instant,
    /// Until when the trial under way has the subject to itself.
    trial: Option<Instant>,
}

/// A period that a failure started: what to log.
#[derive(Debug)]
pub struct Started {
    pub failures: u32,
    pub length: Duration,
}

impl Streak {
    /// Whether [`Streak::admits`] would let a caller through now, without
    /// taking the trial: for choosing among several before using one.
    pub fn would_admit(&self) -> bool {
        if self.consecutive.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let now = Instant::now();
        self.state
            .lock()
            .is_none_or(|p| now >= p.until && p.trial.is_none_or(|t| now >= t))
    }

    /// Whether the subject may be used now; once a period is over, one
    /// caller is let through to try it, the others stay out for `lease`.
    pub fn admits(&self, lease: Lease) -> bool {
        if self.consecutive.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let mut state = self.state.lock();
        let now = Instant::now();
        match state.as_mut() {
            None => true,
            Some(p) if now < p.until => false,
            Some(p) if p.trial.is_some_and(|t| now < t) => false,
            Some(p) => {
                p.trial = Some(
                    now + match lease {
                        Lease::Period => p.length,
                        Lease::For(d) => d,
                    },
                );
                true
            }
        }
    }

    /// Whether it is out of use, without taking a trial.
    pub fn is_out(&self) -> bool {
        self.remaining().is_some()
    }

    /// A use failed; `Some` when that started a period.
    pub fn failed(&self, schedule: &Schedule) -> Option<Started> {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        let mut state = self.state.lock();
        if schedule.threshold == 0 {
            // Turned off (by a reload, say): nothing stays out.
            *state = None;
            return None;
        }
        let now = Instant::now();
        let length = match *state {
            None if n < schedule.threshold => return None,
            None => schedule.first,
            // Failures of uses that began before the period do not lengthen it.
            Some(p) if now < p.until => return None,
            // A failed trial, or a failure once the period is over, doubles it.
            Some(p) => (p.length * 2).min(schedule.longest),
        };
        *state = Some(Period {
            length,
            until: now + length,
            trial: None,
        });
        self.engaged.fetch_add(1, Ordering::Relaxed);
        Some(Started {
            failures: n,
            length,
        })
    }

    /// A use succeeded; `true` if that ended a period.
    pub fn succeeded(&self) -> bool {
        if self.consecutive.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.consecutive.store(0, Ordering::Relaxed);
        self.state.lock().take().is_some()
    }

    pub fn consecutive(&self) -> u32 {
        self.consecutive.load(Ordering::Relaxed)
    }

    pub fn engaged(&self) -> u64 {
        self.engaged.load(Ordering::Relaxed)
    }

    /// What is left of the period under way, if one is.
    pub fn remaining(&self) -> Option<Duration> {
        self.state
            .lock()
            .and_then(|p| p.until.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    /// A period has run out and a trial is due or under way.
    pub fn on_trial(&self) -> bool {
        self.state.lock().is_some_and(|p| p.until <= Instant::now())
    }

    #[cfg(test)]
    pub(crate) fn end_period(&self) {
        if let Some(p) = self.state.lock().as_mut() {
            p.until = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: Schedule = Schedule {
        threshold: 2,
        first: Duration::from_millis(100),
        longest: Duration::from_millis(300),
    };

    #[test]
    fn out_after_the_threshold_one_trial_doubling_until_a_success() {
        let s = Streak::default();
        assert!(s.failed(&SCHEDULE).is_none());
        assert!(s.admits(Lease::Period), "under the threshold");
        let started = s.failed(&SCHEDULE).unwrap();
        assert_eq!((started.failures, started.length.as_millis()), (2, 100));
        assert!(!s.admits(Lease::Period) && s.is_out());
        assert!(
            s.failed(&SCHEDULE).is_none(),
            "a failure during it does not lengthen it"
        );
        s.end_period();
        assert!(s.on_trial());
        assert!(s.admits(Lease::Period), "one trial");
        assert!(!s.admits(Lease::Period), "only one");
        assert_eq!(s.failed(&SCHEDULE).unwrap().length.as_millis(), 200);
        s.end_period();
        assert!(s.admits(Lease::For(Duration::ZERO)));
        assert!(
            s.admits(Lease::For(Duration::ZERO)),
            "a lapsed trial lets another through"
        );
        assert_eq!(
            s.failed(&SCHEDULE).unwrap().length.as_millis(),
            300,
            "up to the longest"
        );
        assert_eq!(s.engaged(), 3);
        assert!(s.succeeded());
        assert!(s.admits(Lease::Period) && !s.is_out() && s.consecutive() == 0);
    }

    #[test]
    fn a_threshold_of_zero_never_takes_it_out_and_clears_a_period() {
        let s = Streak::default();
        s.failed(&SCHEDULE);
        s.failed(&SCHEDULE);
        assert!(s.is_out());
        let off = Schedule {
            threshold: 0,
            ..SCHEDULE
        };
        assert!(s.failed(&off).is_none());
        assert!(!s.is_out() && s.admits(Lease::Period));
    }
}
