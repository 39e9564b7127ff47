//! A live instance of one plugin version, kept by one request for all of
//! its phases: its store and phase functions, the deadline clock, and the
//! phase calls. The live request/response heads are swapped into the store
//! for a call and back out after; every failure is classified so the
//! pipeline can apply the plugin's policy.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::anyhow;
use bytes::Bytes;
use pingora_http::{RequestHeader, ResponseHeader};
use wasmtime::component::Resource;
use wasmtime::Store;

use super::bindings::types::Completion;
use super::bindings::{package_phase, post, prepare, present, prime};
use super::call::{Access, Finished};
use super::caps::cache::CacheChoice;
use super::epoch::{tick_at, ticks_for};
use super::epoch_policy::DeadlineExceeded;
use super::exports::{exported, Guests};
use super::failure::{Failure, FailureKind};
use super::slow_lane;
use super::state::HostState;
use super::stats::PluginStats;

/// What a running call owns: it may finish on another thread (the slow
/// lane), so it takes these with it and gives them back when it ends.
pub struct Live {
    pub(crate) store: Store<HostState>,
    pub(crate) guests: Guests,
}

/// A live instance, kept by one request for all of its phases.
pub struct Instance {
    /// Out while a call runs; lost with a cancelled call (the instance is
    /// then marked broken and never reused).
    pub(crate) live: Option<Box<Live>>,
    pub(super) uses: u64,
    /// Trapped, timed out or cancelled mid-call: never reused.
    pub(crate) broken: bool,
    pub(crate) stats: Arc<PluginStats>,
    /// When the current phase call began.
    pub(crate) call_started: std::time::Instant,
}

/// What became of a post batch.
pub struct BatchOutcome {
    /// The finished requests, back from the store, in their order.
    pub batch: Vec<Finished>,
    /// The requests whose post failed (by place in the batch), each once.
    pub failed: Vec<(usize, Failure)>,
    /// What must be handed over again.
    pub again: Again,
}

/// What of a batch goes again, after a call that ended early.
pub enum Again {
    Nothing,
    /// The requests from this place on were not handled.
    From(usize),
    /// It cannot be told which requests were handled: each one that was
    /// not reported on goes again alone.
    EachUnreported,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stats.instances_live.fetch_sub(1, Ordering::Relaxed);
        if self.live.is_none() {
            // Its call was cancelled mid-way.
            self.stats.running.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Instance {
    /// Marks the instance broken and says what went wrong.
    fn failed(&mut self, e: wasmtime::Error) -> Failure {
        self.broken = true;
        let kind = if e.is::<DeadlineExceeded>() {
            FailureKind::Deadline
        } else if self.store().data().limiter.memory_hit {
            FailureKind::Memory
        } else {
            FailureKind::Trap
        };
        let detail = match e.downcast_ref::<wasmtime::Trap>() {
            Some(t) => t.to_string(),
            None => format!("{e:#}"),
        };
        Failure { kind, detail }
    }

    fn enter(&mut self, access: Access, deadline: std::time::Duration) {
        self.store().data_mut().call.access = access;
        self.arm(deadline);
        // Cancelled before `leave`: the instance is not reused.
        self.broken = true;
    }

    /// Runs one guest call with the instance's store: here while it is
    /// short, on the slow lane once it runs long.
    /// `f` owns the [`Live`] for the call and hands it back with the result,
    /// so that the whole call is one future that can move threads.
    async fn call<R, F, Fut>(&mut self, f: F) -> wasmtime::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(Box<Live>) -> Fut,
        Fut: Future<Output = (Box<Live>, wasmtime::Result<R>)> + Send + 'static,
    {
        let live = self
            .live
            .take()
            .expect("an instance whose call was cancelled is never used again");
        // Counted until the call ends here or, cancelled, the instance is dropped.
        self.stats
            .running
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ((live, r), moved) = slow_lane::run(f(live)).await;
        self.stats
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.live = Some(live);
        if moved {
            self.stats
                .slow_calls
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    /// Lends the request head (and the response head) to the store for one
    /// call, and takes them back after it.
    async fn call_lent<R, F, Fut>(
        &mut self,
        req: &mut RequestHeader,
        mut resp: Option<&mut ResponseHeader>,
        f: F,
    ) -> wasmtime::Result<R>
    where
        R: Send + 'static,
        F: FnOnce(Box<Live>) -> Fut,
        Fut: Future<Output = (Box<Live>, wasmtime::Result<R>)> + Send + 'static,
    {
        self.swap_heads(req, resp.as_deref_mut());
        let r = self.call(f).await;
        self.swap_heads(req, resp);
        r
    }

    fn swap_heads(&mut self, req: &mut RequestHeader, resp: Option<&mut ResponseHeader>) {
        let call = &mut self.store().data_mut().call;
        std::mem::swap(&mut call.req, req);
        if let Some(resp) = resp {
            std::mem::swap(&mut call.resp, resp);
        }
    }

    /// Calls prime; also returns what the plugin chose about the cache.
    pub async fn prime(
        &mut self,
        seq: u64,
        req: &mut RequestHeader,
        deadline: std::time::Duration,
    ) -> Result<(prime::Outcome, Option<CacheChoice>), Failure> {
        let access = Access {
            request_writable: true,
            response_writable: false,
            cache_choice: true,
        };
        self.store().data_mut().views.cache.choice = None;
        self.enter(access, deadline);
        let r = self
            .call_lent(req, None, move |mut l| async move {
                let g = exported::<prime::Guest>(&l.guests);
                let r = g
                    .call_on_request(&mut l.store, seq, Resource::new_borrow(0))
                    .await;
                (l, r)
            })
            .await;
        let choice = self.store().data_mut().views.cache.choice.take();
        self.leave(r).map(|o| (o, choice))
    }

    pub async fn prepare(
        &mut self,
        seq: u64,
        req: &mut RequestHeader,
        deadline: std::time::Duration,
    ) -> Result<prepare::Outcome, Failure> {
        let access = Access {
            request_writable: true,
            response_writable: false,
            cache_choice: false,
        };
        self.enter(access, deadline);
        let r = self
            .call_lent(req, None, move |mut l| async move {
                let g = exported::<prepare::Guest>(&l.guests);
                let r = g
                    .call_on_prepare(&mut l.store, seq, Resource::new_borrow(0))
                    .await;
                (l, r)
            })
            .await;
        self.leave(r)
    }

    /// Calls present with the body and, when a `!>` directive named the
    /// plugin, the directive's arguments (empty otherwise).
    #[allow(clippy::too_many_arguments)]
    pub async fn present(
        &mut self,
        seq: u64,
        req: &mut RequestHeader,
        resp: &mut ResponseHeader,
        body: &Bytes,
        args: &[String],
        head_writable: bool,
        deadline: std::time::Duration,
    ) -> Result<present::Outcome, Failure> {
        let access = Access {
            request_writable: false,
            response_writable: head_writable,
            cache_choice: false,
        };
        self.enter(access, deadline);
        let body = body.clone();
        let args = args.to_vec();
        let r = self
            .call_lent(req, Some(resp), move |mut l| async move {
                let g = exported::<present::Guest>(&l.guests);
                let r = g
                    .call_on_body(
                        &mut l.store,
                        seq,
                        Resource::new_borrow(0),
                        Resource::new_borrow(0),
                        &body,
                        &args,
                    )
                    .await;
                (l, r)
            })
            .await;
        self.leave(r)
    }

    pub async fn package(
        &mut self,
        seq: u64,
        req: &mut RequestHeader,
        resp: &mut ResponseHeader,
        deadline: std::time::Duration,
    ) -> Result<(), Failure> {
        let access = Access {
            request_writable: false,
            response_writable: true,
            cache_choice: false,
        };
        self.enter(access, deadline);
        let r = self
            .call_lent(req, Some(resp), move |mut l| async move {
                let g = exported::<package_phase::Guest>(&l.guests);
                let r = g
                    .call_on_response(
                        &mut l.store,
                        seq,
                        Resource::new_borrow(0),
                        Resource::new_borrow(0),
                    )
                    .await;
                (l, r)
            })
            .await;
        self.leave(r)
    }

    /// Hands post one finished request, as a batch of one: its heads are
    /// the call's, behind the handles the batch carries.
    pub async fn post(
        &mut self,
        seq: u64,
        req: &mut RequestHeader,
        resp: &mut ResponseHeader,
        done: &Completion,
        deadline: std::time::Duration,
    ) -> Result<(), Failure> {
        self.enter(Access::default(), deadline);
        let batch = vec![post::Completed {
            seq,
            req: Resource::new_own(0),
            resp: Resource::new_own(0),
            done: done.clone(),
        }];
        let r = self
            .call_lent(req, Some(resp), move |mut l| async move {
                let g = exported::<post::Guest>(&l.guests);
                let r = g.call_on_complete(&mut l.store, &batch).await;
                (l, r)
            })
            .await;
        self.leave(r)
    }

    /// Hands post a batch of finished requests in one call, each behind
    /// handles of its own, with the plugin's deadline for each of them (see
    /// [`Call::lend_batch`](super::call::Call::lend_batch)). The batch
    /// comes back with what became of it.
    pub async fn post_batch(
        &mut self,
        batch: Vec<Finished>,
        deadline: std::time::Duration,
    ) -> BatchOutcome {
        let list: Vec<post::Completed> = batch
            .iter()
            .zip(1u32..)
            .map(|(f, handle)| post::Completed {
                seq: f.seq,
                req: Resource::new_own(handle),
                resp: Resource::new_own(handle),
                done: f.done.clone(),
            })
            .collect();
        self.enter(Access::default(), deadline);
        self.store().data_mut().call.lend_batch(batch, deadline);
        let r = self
            .call(move |mut l| async move {
                let g = exported::<post::Guest>(&l.guests);
                let r = g.call_on_complete(&mut l.store, &list).await;
                (l, r)
            })
            .await;
        self.stats
            .call_seconds
            .observe(self.call_started.elapsed().as_secs_f64());
        let call = &mut self.store().data_mut().call;
        let batch = call.take_batch();
        let reports = std::mem::take(&mut call.batch_reports);
        let stopped_at = call.reported_last.take();
        let at = |seq: u64| batch.iter().position(|f| f.seq == seq);
        // Each report is one request's failure, counted once.
        let mut failed: Vec<(usize, Failure)> = Vec::with_capacity(reports.len());
        let mut stop_message = None;
        for (seq, detail) in reports {
            let Some(k) = at(seq) else { continue };
            if r.is_err() && Some(seq) == stopped_at {
                stop_message = Some((k, detail));
            } else {
                let kind = FailureKind::Reported;
                failed.push((k, Failure { kind, detail }));
            }
        }
        let again = match r {
            Ok(()) => {
                self.broken = false;
                Again::Nothing
            }
            Err(e) => {
                // A report as the plugin's last word says where the batch
                // stopped (the Rust and C SDKs report, then trap): the
                // requests after it go again on a fresh instance. Without
                // one, each request not reported on goes again alone,
                // unless the batch was one request.
                let mut f = self.failed(e);
                match stop_message {
                    Some((k, message)) => {
                        f.detail = format!("{}; the plugin reported: {message}", f.detail);
                        failed.push((k, f));
                        Again::From(k + 1)
                    }
                    None if batch.len() == 1 => {
                        failed.push((0, f));
                        Again::Nothing
                    }
                    None => Again::EachUnreported,
                }
            }
        };
        BatchOutcome {
            batch,
            failed,
            again,
        }
    }

    /// Ends a call: a trap, a deadline or a limit fails it and the instance
    /// is not reused; a failure the plugin's code reported (an exception its
    /// SDK caught) fails it too, but the instance is sound and kept.
    fn leave<T>(&mut self, r: wasmtime::Result<T>) -> Result<T, Failure> {
        self.stats
            .call_seconds
            .observe(self.call_started.elapsed().as_secs_f64());
        let reported = self.store().data_mut().call.reported.take();
        match (r, reported) {
            (Ok(v), None) => {
                self.broken = false;
                Ok(v)
            }
            (Ok(_), Some(message)) => {
                self.broken = false;
                Err(Failure {
                    kind: FailureKind::Reported,
                    detail: message,
                })
            }
            (Err(e), reported) => {
                let mut f = self.failed(e);
                if let Some(message) = reported {
                    f.detail = format!("{}; the plugin reported: {message}", f.detail);
                }
                Err(f)
            }
        }
    }
}

impl Instance {
    /// What the request handles report beyond the head (id, client, scheme).
    pub fn set_request_info(&mut self, info: Option<Arc<super::RequestInfo>>) {
        self.store().data_mut().call.info = info;
    }

    pub(crate) fn live_mut(&mut self) -> &mut Live {
        self.live
            .as_mut()
            .expect("an instance whose call was cancelled is never used again")
    }

    pub(crate) fn store(&mut self) -> &mut Store<HostState> {
        &mut self.live_mut().store
    }

    pub(super) fn instance_handle(&mut self) -> anyhow::Result<wasmtime::component::Instance> {
        self.store()
            .data()
            .handle
            .ok_or_else(|| anyhow!("instance not started"))
    }

    /// Starts the deadline clock for one call.
    pub(crate) fn arm(&mut self, deadline: std::time::Duration) {
        // One clock read serves the deadline and the call's duration.
        self.call_started = std::time::Instant::now();
        let call_tick = tick_at(self.call_started);
        super::epoch::advance(call_tick);
        let store = self.store();
        let call = &mut store.data_mut().call;
        call.call_tick = call_tick;
        call.deadline_tick = call_tick + ticks_for(deadline);
        call.headers_added = 0;
        call.reported = None;
        call.cpu = Default::default();
        store.set_epoch_deadline(1);
    }
}
