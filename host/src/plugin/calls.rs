//! Phase calls on an instance. The live request/response heads are swapped
//! into the store for the call and back out after; every failure is
//! classified so the pipeline can apply the plugin's policy.

use std::fmt;
use std::future::Future;

use bytes::Bytes;
use pingora_http::{RequestHeader, ResponseHeader};
use wasmtime::component::Resource;

use super::bindings::types::Completion;
use super::bindings::{prepare, present, prime};
use super::caps::cache::CacheChoice;
use super::epoch_policy::DeadlineExceeded;
use super::loaded::{Instance, Live};
use super::slow_lane;
use super::state::Access;

/// The pipeline calls a phase only on plugins that export it.
fn exported<G>(guest: &Option<G>) -> &G {
    guest.as_ref().expect("called only when exported")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Trap,
    Deadline,
    Memory,
    BadOutput,
    Instantiate,
}

impl FailureKind {
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Trap,
        FailureKind::Deadline,
        FailureKind::Memory,
        FailureKind::BadOutput,
        FailureKind::Instantiate,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::BadOutput => "bad-output",
            FailureKind::Instantiate => "instantiate",
        }
    }
}

#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}

impl Failure {
    pub fn bad_output(detail: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::BadOutput,
            detail: detail.into(),
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
        self.store().data_mut().access = access;
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
        let data = self.store().data_mut();
        std::mem::swap(&mut data.req, req);
        if let Some(resp) = resp {
            std::mem::swap(&mut data.resp, resp);
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
        self.store().data_mut().cache_choice = None;
        self.enter(access, deadline);
        let r = self
            .call_lent(req, None, move |mut l| async move {
                let g = exported(&l.guests.prime);
                let r = g
                    .call_on_request(&mut l.store, seq, Resource::new_borrow(0))
                    .await;
                (l, r)
            })
            .await;
        let choice = self.store().data_mut().cache_choice.take();
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
                let g = exported(&l.guests.prepare);
                let r = g
                    .call_on_prepare(&mut l.store, seq, Resource::new_borrow(0))
                    .await;
                (l, r)
            })
            .await;
        self.leave(r)
    }

    pub async fn present(
        &mut self,
        seq: u64,
        req: &mut RequestHeader,
        resp: &mut ResponseHeader,
        body: &Bytes,
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
        let r = self
            .call_lent(req, Some(resp), move |mut l| async move {
                let g = exported(&l.guests.present);
                let r = g
                    .call_on_body(
                        &mut l.store,
                        seq,
                        Resource::new_borrow(0),
                        Resource::new_borrow(0),
                        &body,
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
                let g = exported(&l.guests.package);
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

    pub async fn post(
        &mut self,
        seq: u64,
        req: &mut RequestHeader,
        resp: &mut ResponseHeader,
        done: &Completion,
        deadline: std::time::Duration,
    ) -> Result<(), Failure> {
        self.enter(Access::default(), deadline);
        let done = done.clone();
        let r = self
            .call_lent(req, Some(resp), move |mut l| async move {
                let g = exported(&l.guests.post);
                let r = g
                    .call_on_complete(
                        &mut l.store,
                        seq,
                        Resource::new_borrow(0),
                        Resource::new_borrow(0),
                        &done,
                    )
                    .await;
                (l, r)
            })
            .await;
        self.leave(r)
    }

    fn leave<T>(&mut self, r: wasmtime::Result<T>) -> Result<T, Failure> {
        self.stats
            .call_seconds
            .observe(self.call_started.elapsed().as_secs_f64());
        match r {
            Ok(v) => {
                self.broken = false;
                Ok(v)
            }
            Err(e) => Err(self.failed(e)),
        }
    }
}
