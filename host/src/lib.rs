//! Kavro: a reverse proxy and web server on Pingora whose extensions are
//! sandboxed WebAssembly components.

pub mod actions;
pub mod admin;
pub mod authoring;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod compression;
pub mod config;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod protect;
pub mod realtime;
pub mod reload;
pub mod routing;
pub mod server;
pub mod services;
pub mod shutdown;
pub mod streak;
pub mod tls;
pub mod upstream;

/// What the fuzz targets in `fuzz/` reach that is not public otherwise:
/// the host's own functions, re-exported or called as they are. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::plugin::bindings::types;
    use crate::plugin::Failure;

    pub use crate::pipeline::phases::reply_to_produced;
    pub use crate::pipeline::request_host;
    pub use wasmtime::component::Resource;

    /// A plugin's headers (a reply's, a forward's) as the host takes them.
    pub fn header_list(
        list: Vec<types::Header>,
    ) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, Failure> {
        crate::pipeline::phases::header_list(list)
    }

    /// A path and query a plugin rewrites or forwards to.
    pub fn plugin_uri(uri: &str) -> Result<http::Uri, Failure> {
        crate::pipeline::phases::plugin_uri(uri, "rewrite")
    }
}

use std::sync::Arc;

/// What serves requests right now: one config, what it built, and one
/// plugin set. A request keeps the `Arc` it started with, so swapping in a
/// new one never changes a request under way.
pub struct Active {
    pub config: Arc<config::Config>,
    pub services: Arc<services::Services>,
    pub plugins: Arc<plugin::PluginSet>,
    /// A hash of the config and plugins it was made from.
    pub version: String,
    /// What its requests did, for the verification after a reload.
    pub health: reload::verify::SetHealth,
}

impl Active {
    pub fn new(
        config: config::Config,
        services: services::Services,
        plugins: plugin::PluginSet,
    ) -> Active {
        Active {
            version: reload::history::version(&config, &plugins),
            config: Arc::new(config),
            services: Arc::new(services),
            plugins: Arc::new(plugins),
            health: Default::default(),
        }
    }
}
