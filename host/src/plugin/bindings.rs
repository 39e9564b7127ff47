//! Host-side bindings for the `kavro:plugin` WIT package. Imports are
//! synchronous (they never block) but for outbound HTTP and KV; phase exports are
//! called async so that epoch deadlines can yield the worker thread.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "kavro:plugin/host",
    // KV goes to Redis in a `[cluster]`.
    imports: {
        "kavro:plugin/http.send": async,
        "kavro:plugin/kv.get": async,
        "kavro:plugin/kv.set": async,
        "kavro:plugin/kv.delete": async,
        "kavro:plugin/kv.increment": async,
    },
    exports: { default: async },
});

pub use exports::kavro::plugin::{
    package as package_phase, plugin as describe, post, prepare, present, prime,
};
pub use kavro::plugin::types;

/// The WIT package version this host speaks.
pub const PACKAGE: &str = "kavro:plugin";
pub const VERSION: &str = "0.2.0";

/// Fully qualified export names, as found in a component's type.
pub fn export_name(interface: &str) -> String {
    format!("{PACKAGE}/{interface}@{VERSION}")
}
