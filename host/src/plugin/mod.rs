//! The plugin runtime: wasmtime engine, loading and validation, the warm
//! instance pool, phase calls with deadlines (long ones on a slow lane), and the capabilities.

pub mod artifacts;
pub mod backoff;
pub mod bindings;
pub mod call;
pub mod caps;
pub mod engine;
pub mod epoch;
pub mod epoch_policy;
pub mod exports;
pub mod failure;
pub mod instance;
pub mod loaded;
pub mod phase;
pub mod pool;
pub mod registry;
pub mod slow_lane;
pub mod state;
pub mod stats;

pub use call::RequestInfo;
pub use failure::{Failure, FailureKind};
pub use instance::Instance;
pub use loaded::Plugin;
pub use phase::{Phase, Phases};
pub use registry::{Chains, PluginSet};
