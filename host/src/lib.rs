//! Kavro: a reverse proxy and web server on Pingora whose extensions are
//! sandboxed WebAssembly components.

pub mod actions;
pub mod admin;
pub mod authoring;
pub mod cache;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod protect;
pub mod reload;
pub mod routing;
pub mod server;
pub mod services;
pub mod shutdown;
pub mod streak;
pub mod tls;
pub mod upstream;

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
