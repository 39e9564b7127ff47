//! Post off the request path, in batches. A finished request whose post
//! chain holds none of its instances (post-only plugins, such as a logger:
//! there is no per-request state to continue) joins its worker's queue, and
//! each plugin of the chain gets the queued requests in one call. The
//! queue's first completion starts a flusher, which first lets the other
//! requests the worker has ready finish, so under load a call carries many
//! completions and, on an idle host, one without delay.
//!
//! Nothing is lost: a queued request counts as under way until every plugin
//! of its chain has had it (a SIGTERM waits for it, within the grace
//! period); a call that traps mid-batch has the rest of its batch delivered
//! again on a fresh instance, and a failure counts once per request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::plugin::call::Finished;
use crate::plugin::instance::Again;
use crate::plugin::{Phase, PluginSet};
use crate::shutdown::InFlight;
use crate::Active;

use super::phases::record_failure;

/// Completions a worker holds before its finished requests wait for room
/// (the back-pressure that keeps a post slower than the traffic bounded);
/// also the largest `post_batch`.
const QUEUE_MAX: usize = 256;

/// Completions queued now, on every worker.
static QUEUED: AtomicU64 = AtomicU64::new(0);
/// Batch calls made, and the completions they carried.
static BATCHES: AtomicU64 = AtomicU64::new(0);
static BATCHED: AtomicU64 = AtomicU64::new(0);

/// For `/diagnostics` → `post`: completions queued now, and the batch
/// calls made with the completions they carried (their ratio is the mean
/// batch).
pub fn report(into: &mut serde_json::Value) {
    into["queued"] = QUEUED.load(Ordering::Relaxed).into();
    into["batches"] = BATCHES.load(Ordering::Relaxed).into();
    into["batched"] = BATCHED.load(Ordering::Relaxed).into();
}

/// A finished request waiting for its post chain.
pub struct Pending {
    /// The config and plugins the request ran with.
    pub active: Arc<Active>,
    pub route: Option<usize>,
    pub finished: Finished,
    pub in_flight: Option<InFlight>,
}

#[derive(Default)]
struct Queue {
    state: Mutex<State>,
    room: tokio::sync::Notify,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct State {
    pending: VecDeque<Pending>,
    flushers: usize,
}

thread_local! {
    /// The worker's queue; a flusher may run on another thread, so it is
    /// shared.
    static QUEUE: Arc<Queue> = Arc::default();
}

/// Queues a finished request for its post chain; waits while the worker's
/// queue is full.
pub async fn enqueue(pending: Pending) {
    let queue = QUEUE.with(Arc::clone);
    let mut pending = Some(pending);
    let mut waited = false;
    loop {
        let room = queue.room.notified();
        {
            let mut state = queue.lock();
            if state.pending.len() < QUEUE_MAX {
                let p = pending.take().expect("queued once");
                let limit = p.active.services.post_slots.limit();
                let batch = p.active.config.post_batch;
                state.pending.push_back(p);
                QUEUED.fetch_add(1, Ordering::Relaxed);
                // One flusher, and another for each batch the running ones
                // leave waiting, up to the post slots.
                let more = state.pending.len() > state.flushers * batch;
                let start = state.flushers == 0 || (more && state.flushers < limit);
                state.flushers += usize::from(start);
                drop(state);
                if start {
                    Flusher::spawn(&queue);
                }
                return;
            }
        }
        if !waited {
            waited = true;
            if let Some(p) = &pending {
                p.active.services.post_slots.count_wait();
            }
        }
        room.await;
    }
}

/// A running flusher, counted until it ends however it ends: if it ends
/// by a panic while requests wait, another takes over.
struct Flusher(Arc<Queue>);

impl Flusher {
    /// Runs a flusher already counted in `flushers`. Called without the
    /// queue's lock: a runtime that is shutting down drops the task at
    /// once, and its drop takes the lock.
    fn spawn(queue: &Arc<Queue>) {
        let flusher = Flusher(queue.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(flush(flusher));
        }
    }
}

thread_local! {
    /// Set while a flusher's drop starts another, so that the drop of one
    /// a shutting-down runtime refuses does not start yet another.
    static TAKING_OVER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let take_over = {
            let mut state = self.0.lock();
            state.flushers -= 1;
            let take_over = state.flushers == 0 && !state.pending.is_empty() && !TAKING_OVER.get();
            state.flushers += usize::from(take_over);
            take_over
        };
        if take_over {
            TAKING_OVER.set(true);
            Flusher::spawn(&self.0);
            TAKING_OVER.set(false);
        }
    }
}

async fn flush(flusher: Flusher) {
    let queue = &flusher.0;
    // The requests this worker has ready finish first and join the batch.
    tokio::task::yield_now().await;
    loop {
        // A post slot first: the batch stays queued, and counted, while
        // every slot is busy.
        let Some(active) = queue.lock().pending.front().map(|p| p.active.clone()) else {
            return;
        };
        let _slot = active.services.post_slots.slot().await;
        let batch: Vec<Pending> = {
            let mut state = queue.lock();
            let n = state.pending.len().min(active.config.post_batch);
            QUEUED.fetch_sub(n as u64, Ordering::Relaxed);
            state.pending.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        queue.room.notify_waiters();
        deliver(batch).await;
    }
}

/// Hands a batch to the post chains of its requests: grouped by plugin set
/// and route, each plugin of a group's chain in turn.
async fn deliver(batch: Vec<Pending>) {
    struct Group {
        active: Arc<Active>,
        route: Option<usize>,
        finished: Vec<Finished>,
        in_flight: Vec<InFlight>,
    }
    let mut groups: Vec<Group> = Vec::new();
    for p in batch {
        let at = groups
            .iter()
            .position(|g| Arc::ptr_eq(&g.active, &p.active) && g.route == p.route);
        let g = match at {
            Some(at) => &mut groups[at],
            None => {
                groups.push(Group {
                    active: p.active.clone(),
                    route: p.route,
                    finished: Vec::new(),
                    in_flight: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        g.finished.push(p.finished);
        g.in_flight.extend(p.in_flight);
    }
    for g in groups {
        let set = &g.active.plugins;
        let mut finished = g.finished;
        for &i in &set.chains(g.route)[Phase::Post] {
            let plugin = &set.plugins[i];
            if plugin.settings.paths.is_none() {
                finished = deliver_to(set, i, finished).await;
                continue;
            }
            // A path-scoped plugin has the requests of its paths only.
            let (mine, others): (Vec<_>, Vec<_>) = finished.into_iter().partition(|f| {
                let path = f.req.uri.path();
                let s = &plugin.settings;
                s.covers(path) || s.covers(&crate::routing::plain_path(path))
            });
            finished = deliver_to(set, i, mine).await;
            finished.extend(others);
            finished.sort_by_key(|f| f.seq);
        }
        // The requests are done once the last plugin has had them.
        drop(g.in_flight);
    }
}

/// Hands finished requests to plugin `i`, oldest first, and returns them
/// for the next plugin. A call that ends early has the rest delivered
/// again; a request whose post failed is counted once.
async fn deliver_to(set: &PluginSet, i: usize, finished: Vec<Finished>) -> Vec<Finished> {
    if finished.is_empty() {
        return finished;
    }
    let plugin = &set.plugins[i];
    let mut handled = Vec::with_capacity(finished.len());
    let mut todo = VecDeque::from([finished]);
    while let Some(batch) = todo.pop_front() {
        plugin
            .stats
            .calls
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        BATCHES.fetch_add(1, Ordering::Relaxed);
        BATCHED.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let mut instance = match plugin.checkout().await {
            Ok(instance) => instance,
            Err(f) => {
                for r in &batch {
                    record_failure(plugin, Phase::Post, &f, &r.info.id);
                }
                handled.extend(batch);
                continue;
            }
        };
        instance.set_request_info(None);
        let out = instance
            .post_batch(batch, plugin.settings.limits.deadline)
            .await;
        plugin.give_back(instance);
        for (k, f) in &out.failed {
            record_failure(plugin, Phase::Post, f, &out.batch[*k].info.id);
        }
        let mut batch = out.batch;
        match out.again {
            Again::Nothing => {}
            Again::From(k) => todo.push_front(batch.split_off(k)),
            Again::EachUnreported => {
                let reported: Vec<usize> = out.failed.iter().map(|(k, _)| *k).collect();
                let (done, again): (Vec<_>, Vec<_>) = batch
                    .into_iter()
                    .enumerate()
                    .partition(|(k, _)| reported.contains(k));
                todo.extend(again.into_iter().map(|(_, r)| vec![r]));
                batch = done.into_iter().map(|(_, r)| r).collect();
            }
        }
        handled.extend(batch);
    }
    handled.sort_by_key(|r| r.seq);
    handled
}
