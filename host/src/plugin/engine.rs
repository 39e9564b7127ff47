//! The shared wasmtime engine: pooling allocator, epoch interruption with a
//! 100 µs tick while wasm runs (a long call gives its worker back that
//! often; an idle host ticks every millisecond), and one linker with every
//! capability.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::caps;
use super::state::HostState;

/// One engine tick.
pub const TICK: Duration = Duration::from_micros(100);

/// How often the epoch advances while no wasm runs.
const IDLE_TICK: Duration = Duration::from_millis(1);

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Instances running guest code right now.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Ticks since start, from the clock, so that deadlines hold whatever the
/// ticker's pace.
pub fn now_tick() -> u64 {
    (START.elapsed().as_nanos() / TICK.as_nanos()) as u64
}

/// Held while an instance runs guest code: the ticker runs at full pace.
pub struct Running(());

impl Running {
    pub fn start() -> Running {
        RUNNING.fetch_add(1, Ordering::Relaxed);
        Running(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn ticks_for(d: Duration) -> u64 {
    (d.as_micros() / TICK.as_micros()).max(1) as u64
}

pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<HostState>,
}

impl Runtime {
    /// The process-wide runtime; the first call starts the epoch ticker.
    pub fn get() -> anyhow::Result<Arc<Runtime>> {
        static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
        if let Some(r) = RUNTIME.get() {
            return Ok(r.clone());
        }
        let r = Arc::new(Runtime::new()?);
        let r = RUNTIME.get_or_init(|| r).clone();
        start_ticker(r.engine.clone());
        Ok(r)
    }

    fn new() -> anyhow::Result<Runtime> {
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
        Ok(Runtime { engine, linker })
    }
}

fn start_ticker(engine: Engine) {
    std::thread::Builder::new()
        .name("kavro-epoch".into())
        .spawn(move || loop {
            // An idle host is not woken 10 000 times a second; a call that
            // starts meanwhile gets its first yield within a millisecond.
            let busy = RUNNING.load(Ordering::Relaxed) > 0;
            std::thread::sleep(if busy { TICK } else { IDLE_TICK });
            engine.increment_epoch();
        })
        .expect("spawn the epoch thread");
}
