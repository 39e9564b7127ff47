//! The shared wasmtime engine: pooling allocator, epoch interruption with a
//! 100 µs tick (a long call gives its worker back that often), and one
//! linker with every capability.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::caps;
use super::state::HostState;

/// One engine tick.
pub const TICK: Duration = Duration::from_micros(100);

/// Ticks since start; the epoch deadline callback compares against it.
static TICKS: AtomicU64 = AtomicU64::new(0);

pub fn now_tick() -> u64 {
    TICKS.load(Ordering::Relaxed)
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
            std::thread::sleep(TICK);
            TICKS.fetch_add(1, Ordering::Relaxed);
            engine.increment_epoch();
        })
        .expect("spawn the epoch thread");
}
