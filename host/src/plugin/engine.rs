//! The shared wasmtime engine: pooling allocator, epoch interruption
//! driven by [`super::epoch`], and one linker with every capability.
//! Beside it a baseline engine (Winch) compiles a large component several
//! times faster into slower code: a hot swap serves it at once while the
//! optimizing compile runs in the background (see `artifacts`).

use std::sync::{Arc, OnceLock};

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::caps;
use super::epoch;
use super::state::HostState;

static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();

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
    /// The process-wide runtime; the first call starts the epoch clock.
    pub fn get() -> anyhow::Result<Arc<Runtime>> {
        if let Some(r) = RUNTIME.get() {
            return Ok(r.clone());
        }
        let r = Arc::new(Runtime::new()?);
        Ok(RUNTIME
            .get_or_init(|| {
                epoch::drive(&r.engine);
                r
            })
            .clone())
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

        let slots = instance_slots();
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 4)
            .total_memories(slots)
            .total_tables(slots * 2)
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

/// Instances alive at once across all plugins: the pooling allocator
/// reserves address space for each up front (a few GiB of it, never
/// touched), which a tight `ulimit -v` or valgrind cannot give a thousand
/// of. `KAVRO_INSTANCE_SLOTS` lowers it.
fn instance_slots() -> u32 {
    instance_slots_from(std::env::var("KAVRO_INSTANCE_SLOTS").ok().as_deref())
}

fn instance_slots_from(setting: Option<&str>) -> u32 {
    const DEFAULT: u32 = 1000;
    let Some(v) = setting else {
        return DEFAULT;
    };
    match v.trim().parse::<u32>() {
        Ok(n) if n >= 4 => n,
        _ => {
            tracing::warn!(
                "KAVRO_INSTANCE_SLOTS={v:?} is not a number of at least 4; using {DEFAULT}"
            );
            DEFAULT
        }
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
        epoch::drive(&engine);
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

#[cfg(test)]
mod tests {
    use super::instance_slots_from;

    #[test]
    fn instance_slots_default_and_bounds() {
        assert_eq!(instance_slots_from(None), 1000);
        assert_eq!(instance_slots_from(Some(" 12 ")), 12);
        assert_eq!(instance_slots_from(Some("3")), 1000);
        assert_eq!(instance_slots_from(Some("many")), 1000);
    }
}
