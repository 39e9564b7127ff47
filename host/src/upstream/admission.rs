//! How many requests an upstream takes at once: up to `max_inflight` go
//! at once, up to `max_queue` more wait in order of arrival for at most
//! `queue_timeout`, and the rest are shed (503). A reload that keeps an
//! upstream's limits keeps its gate, so requests of the old config and
//! the new one count together.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Admission;

/// What an upstream counts, whether or not it has limits; kept across
/// reloads by name.
#[derive(Debug, Default)]
pub struct Counters {
    pub shed: AtomicU64,
    pub queue_timeouts: AtomicU64,
    pub retries: AtomicU64,
    /// Retries the budget refused.
    pub retries_refused: AtomicU64,
    /// Requests under way that have retried: what the budget bounds.
    retrying: AtomicUsize,
}

/// Retries under way at once that a budget always allows, however few
/// requests are under way.
const MIN_RETRYING: usize = 3;

/// A request that retried, counted against the budget until it drops.
#[derive(Debug)]
pub struct Retrying(Arc<Counters>);

impl Drop for Retrying {
    fn drop(&mut self) {
        self.0.retrying.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Counters {
    /// Whether one more request may retry while `inflight` are under way
    /// and at most `percent` of them may be retrying; a request that
    /// retried before keeps its place (`held`).
    pub fn may_retry(
        self: &Arc<Self>,
        inflight: usize,
        percent: u32,
        held: &mut Option<Retrying>,
    ) -> bool {
        if held.is_none() {
            let allowed = (inflight * percent as usize / 100).max(MIN_RETRYING);
            if self.retrying.fetch_add(1, Ordering::Relaxed) >= allowed {
                self.retrying.fetch_sub(1, Ordering::Relaxed);
                self.retries_refused.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            *held = Some(Retrying(self.clone()));
        }
        self.retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub fn retrying(&self) -> usize {
        self.retrying.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct Gate {
    limits: Admission,
    /// Tokio's semaphore serves waiters first come, first served.
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Why a request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    QueueFull,
    QueueTimeout,
}

/// A request's slot; dropping it lets the next one in.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gate {
    pub fn new(limits: Admission) -> Gate {
        Gate {
            limits,
            slots: Arc::new(Semaphore::new(limits.max_inflight as usize)),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Waits for a slot, in turn, or refuses at once when the queue is full.
    pub async fn enter(&self, counters: &Counters) -> Result<Slot, Refused> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(Slot(p));
        }
        let queued = self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        if queued >= self.limits.max_queue as usize {
            counters.shed.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::QueueFull);
        }
        match tokio::time::timeout(
            self.limits.queue_timeout,
            self.slots.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(p)) => Ok(Slot(p)),
            // The semaphore is never closed; a timeout is the one way out.
            _ => {
                counters.queue_timeouts.fetch_add(1, Ordering::Relaxed);
                Err(Refused::QueueTimeout)
            }
        }
    }

    pub fn limits(&self) -> Admission {
        self.limits
    }

    /// Requests holding a slot.
    pub fn inflight(&self) -> usize {
        self.limits.max_inflight as usize - self.slots.available_permits()
    }

    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Book {
    gates: HashMap<String, Weak<Gate>>,
    counters: HashMap<String, Weak<Counters>>,
}

static BOOK: LazyLock<Mutex<Book>> = LazyLock::new(Default::default);

/// The gate of upstream `name` with these limits: the one in use if its
/// limits are the same, else a new one.
pub fn gate(name: &str, limits: Admission) -> Arc<Gate> {
    let mut book = BOOK.lock();
    book.gates.retain(|_, g| g.strong_count() > 0);
    if let Some(g) = book.gates.get(name).and_then(Weak::upgrade) {
        if g.limits == limits {
            return g;
        }
    }
    let g = Arc::new(Gate::new(limits));
    book.gates.insert(name.to_string(), Arc::downgrade(&g));
    g
}

/// The counters of upstream `name`.
pub fn counters(name: &str) -> Arc<Counters> {
    let mut book = BOOK.lock();
    book.counters.retain(|_, c| c.strong_count() > 0);
    if let Some(c) = book.counters.get(name).and_then(Weak::upgrade) {
        return c;
    }
    let c = Arc::new(Counters::default());
    book.counters.insert(name.to_string(), Arc::downgrade(&c));
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max_inflight: u32, max_queue: u32) -> Admission {
        Admission {
            max_inflight,
            max_queue,
            queue_timeout: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn full_queue_sheds_and_waiters_time_out() {
        let g = gate("unit-gate", limits(1, 1));
        let c = Counters::default();
        let first = g.enter(&c).await.unwrap();
        assert_eq!(g.inflight(), 1);
        let (waiter, shed) = tokio::join!(g.enter(&c), async {
            tokio::task::yield_now().await;
            g.enter(&c).await
        });
        assert_eq!(shed.unwrap_err(), Refused::QueueFull);
        assert_eq!(waiter.unwrap_err(), Refused::QueueTimeout);
        assert_eq!(c.shed.load(Ordering::Relaxed), 1);
        assert_eq!(c.queue_timeouts.load(Ordering::Relaxed), 1);
        drop(first);
        assert!(g.enter(&c).await.is_ok());
        assert_eq!(g.queued(), 0);
    }

    #[test]
    fn the_budget_bounds_requests_retrying_at_once() {
        let c = Arc::new(Counters::default());
        let mut held: Vec<Option<Retrying>> = (0..5).map(|_| None).collect();
        // 10 under way at 20%: 2, but 3 are always allowed.
        let granted = held
            .iter_mut()
            .map(|h| c.may_retry(10, 20, h))
            .filter(|granted| *granted)
            .count();
        assert_eq!(granted, 3);
        assert_eq!(c.retries_refused.load(Ordering::Relaxed), 2);
        // A request that retried before may retry again.
        assert!(c.may_retry(10, 20, &mut held[0]));
        held.clear();
        assert_eq!(c.retrying(), 0);
        let mut one = None;
        assert!(c.may_retry(100, 20, &mut one));
    }

    #[test]
    fn same_limits_same_gate() {
        let a = gate("unit-gate-2", limits(2, 0));
        assert!(Arc::ptr_eq(&a, &gate("unit-gate-2", limits(2, 0))));
        assert!(!Arc::ptr_eq(&a, &gate("unit-gate-2", limits(3, 0))));
    }
}
