//! The shared wasmtime engine: pooling allocator, epoch interruption with a
//! 200 µs tick while calls run on workers (a long call yields its worker at
//! each tick and, past its CPU allowance, moves to the slow lane; an idle
//! host ticks every millisecond), and one linker with every capability.
//! Beside it a baseline engine (Winch) compiles a large component several
//! times faster into slower code: a hot swap serves it at once while the
//! optimizing compile runs in the background (see `artifacts`).
//!
//! Under traffic the workers advance the epoch themselves as calls start,
//! and the ticker thread, whose every wake-up preempts a worker, only backs
//! them up: at 200 µs when no worker has advanced it for 400 µs (a call
//! running alone, or every worker busy in one), else every millisecond.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::caps;
use super::state::HostState;

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

static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();

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
        if let Some(r) = RUNTIME.get() {
            r.increment_epoch();
        }
    }
}

pub fn ticks_for(d: Duration) -> u64 {
    (d.as_micros() / TICK.as_micros()).max(1) as u64
}

pub struct Runtime {
    /// Cranelift, optimizing: what plugins run on.
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// Winch, single pass: what a large component runs on between a hot
    /// swap and the end of its optimizing compile. Made on first use; None
    /// where Winch does not support the CPU: swaps then wait for the
    /// optimizing compile.
    baseline: OnceLock<Option<(Engine, Linker<HostState>)>>,
}

impl Runtime {
    /// The process-wide runtime; the first call starts the epoch ticker.
    pub fn get() -> anyhow::Result<Arc<Runtime>> {
        if let Some(r) = RUNTIME.get() {
            return Ok(r.clone());
        }
        let r = Arc::new(Runtime::new()?);
        let r = RUNTIME.get_or_init(|| r).clone();
        start_ticker(r.clone());
        Ok(r)
    }

    /// The baseline linker, if `engine` is the baseline engine.
    fn baseline_linker(&self, engine: &Engine) -> Option<&Linker<HostState>> {
        match self.baseline.get() {
            Some(Some((baseline, linker))) if Engine::same(engine, baseline) => Some(linker),
            _ => None,
        }
    }

    /// The linker for a component compiled by either engine.
    pub fn linker_for(&self, engine: &Engine) -> &Linker<HostState> {
        self.baseline_linker(engine).unwrap_or(&self.linker)
    }

    /// Whether `engine` is the baseline engine.
    pub fn is_baseline(&self, engine: &Engine) -> bool {
        self.baseline_linker(engine).is_some()
    }

    /// The baseline engine, made on first use, if this CPU has one.
    pub fn baseline(&self) -> Option<&Engine> {
        self.baseline
            .get_or_init(new_baseline)
            .as_ref()
            .map(|(e, _)| e)
    }

    fn increment_epoch(&self) {
        self.engine.increment_epoch();
        if let Some(Some((baseline, _))) = self.baseline.get() {
            baseline.increment_epoch();
        }
    }

    fn new() -> anyhow::Result<Runtime> {
        // wasmtime compiles on rayon's global pool: in the background.
        let _ = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("kavro-compile-{i}"))
            .start_handler(|_| super::slow_lane::background_priority())
            .build_global();
        let mut cfg = Config::new();
        cfg.wasm_component_model(true);
        cfg.epoch_interruption(true);
        cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);

        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(1000)
            .total_core_instances(4000)
            .total_memories(1000)
            .total_tables(2000)
            .max_memories_per_component(16)
            .max_tables_per_component(16)
            .max_core_instances_per_component(64)
            .max_memory_size(1 << 30)
            .table_elements(100_000)
            .max_component_instance_size(4 << 20)
            .max_core_instance_size(4 << 20);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

        let engine = Engine::new(&cfg)?;
        let mut linker = Linker::new(&engine);
        caps::add_to_linker(&mut linker)?;
        Ok(Runtime {
            engine,
            linker,
            baseline: OnceLock::new(),
        })
    }
}

/// The baseline engine and its linker. Instances of baseline code are few
/// and short-lived: allocated on demand, without a second pool's
/// reservations.
fn new_baseline() -> Option<(Engine, Linker<HostState>)> {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    cfg.strategy(wasmtime::Strategy::Winch);
    let made = Engine::new(&cfg).and_then(|engine| {
        let mut linker = Linker::new(&engine);
        caps::add_to_linker(&mut linker)?;
        Ok((engine, linker))
    });
    match made {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::info!(
                "no baseline compiler on this CPU, swaps wait for optimized code: {e:#}"
            );
            None
        }
    }
}

/// A plain thread, not a Pingora background service: the epoch must advance
/// while every runtime worker is busy running guest code, which is when a
/// timer task would never get to run.
fn start_ticker(runtime: Arc<Runtime>) {
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
                runtime.increment_epoch();
            }
        })
        .expect("spawn the epoch thread");
    let _ = TICKER.set(thread.thread().clone());
}
