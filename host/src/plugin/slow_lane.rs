//! Long phase calls leave the worker threads. A call that has used its
//! plugin's `worker_cpu` (300 µs of CPU time by default; a well-behaved call
//! takes a few µs, a fresh Python instance's first call over a thousand) is
//! handed, with its store, to one background thread at idle priority
//! (`SCHED_IDLE`). It
//! runs on there to its end or its deadline, with only the CPU time that
//! serving requests leaves over, while the worker goes back to other
//! requests. A looping plugin then costs the requests around it that much
//! CPU, in slices of one tick, not a share of every core.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;
use std::task::Poll;

use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use super::epoch::Running;

thread_local! {
    /// Set while [`run`] polls a call on a worker: the call may move.
    static MOVABLE: Cell<bool> = const { Cell::new(false) };
    /// Set by the epoch callback when a movable call should move.
    static MOVE: Cell<bool> = const { Cell::new(false) };
    /// On the lane, while it polls a call: the lane thread's run-queue wait
    /// (ns) when the call was handed over.
    static ARRIVED_AT_WAIT: Cell<Option<u64>> = const { Cell::new(None) };
    /// Set while the lane polls a call.
    static ON_LANE: Cell<bool> = const { Cell::new(false) };
}

/// The lane thread's id, for reading its scheduler statistics.
static LANE_TID: AtomicI32 = AtomicI32::new(0);

/// Whether the call being polled on this thread may move to the lane.
pub fn movable() -> bool {
    MOVABLE.get()
}

/// Whether the call being polled on this thread is on the slow lane.
pub fn on_lane() -> bool {
    ON_LANE.get()
}

/// Asks [`run`] to move the call it polls once it yields.
pub fn request_move() {
    MOVE.set(true);
}

/// Runs `call` here while it is short, and on the slow lane once the epoch
/// callback asks it to move; also says whether it moved. Dropping the
/// returned future cancels the call wherever it runs.
pub async fn run<F>(call: F) -> (F::Output, bool)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut call = Box::pin(call);
    // The engine ticks at full pace only while calls run on workers; on
    // the lane a millisecond is fine grained enough.
    let running = Running::start();
    let done = std::future::poll_fn(|cx| {
        MOVABLE.set(true);
        let polled = call.as_mut().poll(cx);
        MOVABLE.set(false);
        match polled {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending if MOVE.replace(false) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    drop(running);
    if let Some(v) = done {
        return (v, false);
    }
    let lane = lane();
    let arrived_at_wait = run_queue_wait(&format!(
        "/proc/self/task/{}/schedstat",
        LANE_TID.load(Ordering::Relaxed)
    ));
    let task = lane.spawn(std::future::poll_fn(move |cx| {
        ARRIVED_AT_WAIT.set(arrived_at_wait);
        ON_LANE.set(true);
        let polled = call.as_mut().poll(cx);
        ARRIVED_AT_WAIT.set(None);
        ON_LANE.set(false);
        polled
    }));
    let _cancel = CancelOnDrop(task.abort_handle());
    match task.await {
        Ok(v) => (v, true),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => unreachable!("the slow lane never shuts down"),
    }
}

struct CancelOnDrop(AbortHandle);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// On the lane: how long the lane has waited for a CPU since the call now
/// running arrived. That wait is the host's, not the plugin's, so its
/// deadline moves by it.
pub fn starved() -> Option<std::time::Duration> {
    let arrived = ARRIVED_AT_WAIT.get()?;
    let now = run_queue_wait("/proc/thread-self/schedstat")?;
    Some(std::time::Duration::from_nanos(now.saturating_sub(arrived)))
}

/// The second figure of a thread's `schedstat`: nanoseconds spent runnable
/// but waiting for a CPU.
fn run_queue_wait(schedstat: &str) -> Option<u64> {
    std::fs::read_to_string(schedstat)
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The CPU time a call has used on the workers, summed from its ticks.
/// Work stealing may resume a yielded call on another worker, whose thread
/// clock is another clock: each stretch is measured on one thread, and the
/// first tick on a new thread only starts a stretch.
#[derive(Debug, Default)]
pub struct CpuMeter {
    used: std::time::Duration,
    last: Option<(usize, std::time::Duration)>,
}

impl CpuMeter {
    /// The CPU time used so far, read at a tick on the calling thread.
    pub fn sample(&mut self) -> std::time::Duration {
        thread_local! {
            static ANCHOR: u8 = const { 0 };
        }
        let thread = ANCHOR.with(|a| a as *const u8 as usize);
        let now = thread_cpu_time();
        if let Some((t, then)) = self.last {
            if t == thread {
                self.used += now.saturating_sub(then);
            }
        }
        self.last = Some((thread, now));
        self.used
    }
}

/// CPU time the calling thread has used. Through libc rather than rustix:
/// rustix looks for the vDSO itself, and crashes where there is none (under
/// valgrind, which the instruction counts of `./dev.sh bench-instr` need).
fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if !ok {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The lane's runtime, started on first use.
fn lane() -> &'static Handle {
    static LANE: OnceLock<Handle> = OnceLock::new();
    LANE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("kavro-slow-lane".into())
            .spawn(move || {
                LANE_TID.store(
                    rustix::thread::gettid().as_raw_nonzero().get(),
                    Ordering::Relaxed,
                );
                background_priority();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build the slow lane's runtime");
                tx.send(rt.handle().clone()).expect("hand over the handle");
                rt.block_on(std::future::pending::<()>());
            })
            .expect("spawn the slow lane thread");
        rx.recv().expect("the slow lane starts")
    })
}

/// `SCHED_IDLE` for the calling thread: the kernel runs it only when no
/// normal thread wants the CPU, and a waking worker preempts it at once.
/// Where that is not allowed, the lowest nice value. The slow lane and the
/// plugin compiler run so: neither takes CPU from serving, and a call on
/// the lane shares the spare CPU with a compile, rather than starving
/// while a hot swap compiles a large plugin.
pub fn background_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    let idle_policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    // rustix has no sched_setscheduler. thread-priority also resets the
    // nice value, which SCHED_IDLE ignores and an unprivileged thread may
    // not lower: the policy it reads back is what counts.
    let set = thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        ThreadPriority::Min,
        idle_policy,
    );
    let Err(e) = set else { return };
    if thread_priority::thread_schedule_policy() == Ok(idle_policy) {
        return;
    }
    let why = match e {
        thread_priority::Error::OS(code) => std::io::Error::from_raw_os_error(code).to_string(),
        e => e.to_string(),
    };
    // PRIO_PROCESS with no pid is the calling thread on Linux.
    let niced = rustix::process::setpriority_process(None, 19).is_ok();
    tracing::warn!(
        niced,
        "could not take SCHED_IDLE ({why}); long plugin calls and compiles compete with requests"
    );
}
