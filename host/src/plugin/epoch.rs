//! The epoch clock that bounds guest code: ticks counted from the host's
//! start, and the epoch of the engines that run plugins advanced at a
//! 200 µs pace while calls run on workers (a long call yields its worker at
//! each tick and, past its CPU allowance, moves to the slow lane; an idle
//! host ticks every millisecond).
//!
//! Under traffic the workers advance the epoch themselves as calls start,
//! and the ticker thread, whose every wake-up preempts a worker, only backs
//! them up: at 200 µs when no worker has advanced it for 400 µs (a call
//! running alone, or every worker busy in one), else every millisecond.
//! It is a thread of its own, not a task, because it must tick while every
//! tokio worker is busy running guest code.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// The engines whose epoch the clock advances: the optimizing one and,
/// once made, the baseline one. Read lock-free by every advance.
static ENGINES: [OnceLock<Engine>; 2] = [OnceLock::new(), OnceLock::new()];

/// Advances `engine`'s epoch with the clock from now on; the first engine
/// starts the ticker.
pub fn drive(engine: &Engine) {
    for (i, slot) in ENGINES.iter().enumerate() {
        if slot.set(engine.clone()).is_ok() {
            if i == 0 {
                start_ticker();
            }
            return;
        }
    }
}

fn increment() {
    for engine in ENGINES.iter().filter_map(OnceLock::get) {
        engine.increment_epoch();
    }
}

/// The unit in which deadlines and call ages are counted.
pub const TICK: Duration = Duration::from_micros(100);

/// How often the epoch advances while no wasm runs.
const IDLE_TICK: Duration = Duration::from_millis(1);

/// The epoch's pace while calls run on workers: a long call is caught
/// within this much of its start. Each tick wakes a thread, so not faster.
const HOT_TICK: Duration = Duration::from_micros(200);

/// The epoch's pace in ticks, for the workers' own advances.
const HOT_TICKS: u64 = (HOT_TICK.as_nanos() / TICK.as_nanos()) as u64;

/// The tick at which a worker last advanced the epoch.
static WORKER_ADVANCED: AtomicU64 = AtomicU64::new(0);

/// How long the ticker keeps its full pace after it last saw a call, so
/// that steady traffic does not wake it for every call.
const HOT_FOR: Duration = Duration::from_millis(20);

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Calls running guest code on worker threads right now.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Set while the ticker sleeps at its idle pace; a call that starts then
/// wakes it, so that its first tick comes after 200 µs, not a millisecond.
static IDLE: AtomicBool = AtomicBool::new(false);

static TICKER: OnceLock<std::thread::Thread> = OnceLock::new();

/// Ticks since start, from the clock, so that deadlines hold whatever the
/// ticker's pace.
pub fn now_tick() -> u64 {
    tick_at(Instant::now())
}

/// The tick an instant falls in.
pub fn tick_at(t: Instant) -> u64 {
    (t.saturating_duration_since(*START).as_nanos() / TICK.as_nanos()) as u64
}

/// Held while guest code runs on a worker thread (a phase call or an
/// instantiation): the ticker runs at full pace.
pub struct Running(());

impl Running {
    pub fn start() -> Running {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        if IDLE.load(Ordering::SeqCst) {
            if let Some(t) = TICKER.get() {
                t.unpark();
            }
        }
        Running(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Called as a phase call starts on a worker, at tick `now`: advances the
/// epoch if no worker has for [`HOT_TICK`], so that a call running long on
/// another worker is caught by the calls around it.
pub fn advance(now: u64) {
    let last = WORKER_ADVANCED.load(Ordering::Relaxed);
    if now >= last + HOT_TICKS
        && WORKER_ADVANCED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        increment();
    }
}

pub fn ticks_for(d: Duration) -> u64 {
    (d.as_micros() / TICK.as_micros()).max(1) as u64
}

fn start_ticker() {
    let thread = std::thread::Builder::new()
        .name("kavro-epoch".into())
        .spawn(move || {
            let mut hot_until = Instant::now();
            loop {
                // An idle host is not woken 10 000 times a second; a call
                // that starts meanwhile wakes the ticker (the SeqCst pair
                // with `Running::start`: either the call sees IDLE or the
                // ticker sees the call).
                if RUNNING.load(Ordering::SeqCst) > 0 {
                    hot_until = Instant::now() + HOT_FOR;
                }
                if Instant::now() < hot_until {
                    let workers_advance =
                        now_tick() < WORKER_ADVANCED.load(Ordering::Relaxed) + 2 * HOT_TICKS;
                    std::thread::sleep(if workers_advance { IDLE_TICK } else { HOT_TICK });
                } else {
                    IDLE.store(true, Ordering::SeqCst);
                    if RUNNING.load(Ordering::SeqCst) == 0 {
                        std::thread::park_timeout(IDLE_TICK);
                    }
                    IDLE.store(false, Ordering::SeqCst);
                }
                increment();
            }
        })
        .expect("spawn the epoch thread");
    let _ = TICKER.set(thread.thread().clone());
}
