//! Stopping on a signal without hanging, and without cutting work short
//! that could finish.
//!
//! On SIGTERM Pingora stops accepting connections and closes idle ones.
//! Kavro then exits as soon as no request is under way (a request counts
//! from its first hook to the end of its post phase), or, at the end of the
//! grace period, logs what it cuts short and exits anyway: a stuck worker
//! thread or plugin call cannot keep the process alive. Ctrl-C (SIGINT)
//! has no grace period. SIGQUIT hands the listening sockets to a new
//! kavro-host started with `--upgrade`, then drains the same way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::server::{
    ExecutionPhase, ShutdownSignal, ShutdownSignalWatch, UnixShutdownSignalWatch,
};
use tokio::sync::broadcast::{self, error::TryRecvError};
use tracing_appender::non_blocking::WorkerGuard;

use crate::Active;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// After an upgrade hands its sockets over, Pingora goes on accepting on
/// them for a while; the drain starts once it stops listening, or after
/// this long at the most.
const HANDOVER_AT_MOST: Duration = Duration::from_secs(45);

/// The log writer's guard: dropping it writes out what is queued.
static LOG: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// One request under way; dropped when its work, post included, is done
/// or abandoned.
#[derive(Debug)]
pub struct InFlight(());

impl InFlight {
    pub fn enter() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Release);
    }
}

/// Set once a SIGTERM or SIGQUIT has come.
static DRAINING: AtomicBool = AtomicBool::new(false);

/// Whether the process is on its way out: connections are not kept alive.
pub fn draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// Turns true once a SIGTERM or SIGQUIT has come: long-lived connections
/// (the realtime hub's) close themselves instead of waiting to be cut.
static GOING_AWAY: std::sync::LazyLock<tokio::sync::watch::Sender<bool>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::Sender::new(false));

/// Watches for the process's way out; see [`GOING_AWAY`].
pub fn going_away() -> tokio::sync::watch::Receiver<bool> {
    GOING_AWAY.subscribe()
}

/// Requests under way now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Acquire)
}

/// Keeps the log writer's guard until the process exits through [`exit`].
pub fn hold_log(guard: WorkerGuard) {
    *LOG.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
}

/// Writes out the log, then ends the process.
pub fn exit(code: i32) -> ! {
    if let Some(guard) = LOG.lock().unwrap_or_else(|e| e.into_inner()).take() {
        drop(guard);
    }
    std::process::exit(code)
}

/// Pingora's signal watch, which also starts [`drain`] once a signal comes.
pub struct Signals {
    grace: Duration,
    active: Arc<ArcSwap<Active>>,
    /// Pingora's phases: an upgrade's drain waits for the shutdown to start.
    phases: Mutex<Option<broadcast::Receiver<ExecutionPhase>>>,
}

impl Signals {
    pub fn new(
        grace: Duration,
        active: Arc<ArcSwap<Active>>,
        phases: broadcast::Receiver<ExecutionPhase>,
    ) -> Signals {
        Signals {
            grace,
            active,
            phases: Mutex::new(Some(phases)),
        }
    }
}

/// Blocks until Pingora has stopped listening (its shutdown started), or
/// `at_most` has passed: the requests accepted until then are the old
/// process's to finish.
fn until_listening_stops(mut phases: broadcast::Receiver<ExecutionPhase>, at_most: Duration) {
    let until = Instant::now() + at_most;
    while Instant::now() < until {
        match phases.try_recv() {
            Ok(ExecutionPhase::ShutdownStarted) | Err(TryRecvError::Closed) => return,
            Ok(_) | Err(TryRecvError::Lagged(_)) => continue,
            Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let signal = UnixShutdownSignalWatch.recv().await;
        let phases = self.phases.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (grace, handing_over) = match signal {
            ShutdownSignal::FastShutdown => (Duration::ZERO, None),
            ShutdownSignal::GracefulUpgrade => {
                tracing::info!("upgrade: handing the listening sockets to the new kavro-host");
                (self.grace, phases)
            }
            _ => (self.grace, None),
        };
        DRAINING.store(true, Ordering::Relaxed);
        GOING_AWAY.send_replace(true);
        let active = self.active.clone();
        // A thread, not a task or background service: it must exit the
        // process even when every worker is stuck, and Pingora's services
        // are stopping by then.
        let spawned = std::thread::Builder::new()
            .name("kavro-shutdown".into())
            .spawn(move || {
                // Requests accepted while both processes listen are ours to finish.
                if let Some(phases) = handing_over {
                    until_listening_stops(phases, HANDOVER_AT_MOST);
                }
                drain(grace, &active)
            });
        if let Err(e) = spawned {
            tracing::error!("cannot watch the shutdown ({e}); exiting now");
            exit(1);
        }
        signal
    }
}

/// Waits for the requests under way to finish, up to `grace`, then exits.
fn drain(grace: Duration, active: &ArcSwap<Active>) -> ! {
    let until = Instant::now() + grace;
    tracing::info!(
        event = "server_stopping",
        in_flight = in_flight(),
        "shutting down: waiting up to {grace:?} for the requests under way"
    );
    loop {
        if in_flight() == 0 {
            tracing::info!(
                event = "server_stop",
                clean = true,
                "shut down: no request under way"
            );
            exit(0);
        }
        if Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let active = active.load();
    let calls: Vec<String> = active
        .plugins
        .plugins
        .iter()
        .filter_map(|p| {
            let n = p.stats.running.load(Ordering::Relaxed);
            (n > 0).then(|| format!("{} ({n})", p.name))
        })
        .collect();
    tracing::error!(
        event = "server_stop",
        clean = false,
        "shut down after the grace period of {grace:?} with work still running: {} request(s); \
         plugin calls under way: {}",
        in_flight(),
        if calls.is_empty() {
            "none".to_string()
        } else {
            calls.join(", ")
        }
    );
    exit(1)
}
