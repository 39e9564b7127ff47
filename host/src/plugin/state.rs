//! What a plugin instance's store carries: the capabilities' views, the
//! call in progress, WASI and the memory limiter.

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::call::Call;
use super::caps::{HostView, Views};

pub struct HostState {
    pub(crate) views: Views,
    pub(crate) call: Call,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// The component instance this store runs.
    pub(crate) handle: Option<wasmtime::component::Instance>,
}

impl HostState {
    pub fn new(views: Views, call: Call, memory_bytes: usize) -> anyhow::Result<HostState> {
        Ok(HostState {
            wasi: views.wasi()?,
            views,
            call,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes,
                memory_hit: false,
                grown: 0,
            },
            handle: None,
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostView for HostState {
    fn parts(&mut self) -> (&mut Views, &mut Call) {
        (&mut self.views, &mut self.call)
    }
}

/// Caps linear memory; remembers a refusal so a later trap is reported as
/// a memory limit rather than a bare trap.
pub struct Limiter {
    memory_bytes: usize,
    pub(crate) memory_hit: bool,
    /// Bytes of linear memory added since the instance's first request.
    pub(crate) grown: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_hit = true;
            return Ok(false);
        }
        self.grown += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
