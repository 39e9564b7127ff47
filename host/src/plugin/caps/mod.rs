//! Host imports, one capability per module. Each links its WIT interface
//! and reads what this plugin was granted from `Grants`, built once per
//! plugin version from config. A call to a capability that was not granted
//! returns `host-error::denied`; it never traps.

pub mod cache;
pub mod config;
pub mod http;
pub mod kv;
pub mod log;
pub mod metrics;

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::types::HostError;
use super::state::HostState;
use crate::cache::ResponseCache;

/// Host-wide state that capabilities hand out. It outlives plugin
/// versions, so a hot swap keeps the KV data and the cached responses.
#[derive(Clone)]
pub struct Stores {
    pub kv: Arc<kv::KvStore>,
    pub cache: Arc<ResponseCache>,
    /// One connection pool for every plugin's outbound requests.
    pub http: http::HttpClient,
}

impl Stores {
    /// An empty KV store and a response cache of the given sizes.
    pub fn new(cache_max_bytes: u64, cache_max_object_bytes: usize) -> Stores {
        Stores {
            kv: Arc::default(),
            cache: Arc::new(ResponseCache::new(cache_max_bytes, cache_max_object_bytes)),
            http: http::client(),
        }
    }
}

/// What one plugin version may use.
pub struct Grants {
    pub plugin: String,
    pub kv: Option<Arc<kv::KvStore>>,
    pub cache: Option<Arc<ResponseCache>>,
    pub http: Option<Arc<http::HttpGrant>>,
    /// Largest body the plugin may produce or fetch.
    pub max_body: usize,
    pub metrics: bool,
    pub values: BTreeMap<String, String>,
    /// WASI: environment variables and read-only directories (host, guest).
    pub env: Vec<(String, String)>,
    pub dirs: Vec<(std::path::PathBuf, String)>,
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants")
            .field("plugin", &self.plugin)
            .field("kv", &self.kv.is_some())
            .field("cache", &self.cache.is_some())
            .field("http", &self.http.is_some())
            .field("metrics", &self.metrics)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("dirs", &self.dirs)
            .finish()
    }
}

impl Grants {
    pub fn new(plugin: &str, settings: &crate::config::PluginSettings, stores: &Stores) -> Grants {
        let granted = &settings.capabilities;
        Grants {
            plugin: plugin.to_string(),
            kv: granted.contains("kv").then(|| stores.kv.clone()),
            cache: granted.contains("cache").then(|| stores.cache.clone()),
            http: granted.contains("http").then(|| {
                Arc::new(http::HttpGrant {
                    client: stores.http.clone(),
                    upstreams: settings.upstreams.clone(),
                })
            }),
            max_body: settings.limits.max_body_bytes.unwrap_or(1 << 20),
            metrics: granted.contains("metrics"),
            values: settings.values.clone(),
            env: settings.env.clone(),
            dirs: settings.dirs.clone(),
        }
    }

    /// The plugin's WASI context: nothing but what was granted.
    pub fn wasi(&self) -> anyhow::Result<wasmtime_wasi::WasiCtx> {
        use wasmtime_wasi::FsPerms;
        let mut b = wasmtime_wasi::WasiCtx::builder();
        for (k, v) in &self.env {
            b.env(k, v);
        }
        for (host, guest) in &self.dirs {
            b.preopened_dir(host, guest, FsPerms::ReadOnly)?;
        }
        Ok(b.build())
    }
}

/// A plugin always has its own config values and the log.
pub const ALWAYS_GRANTED: &[&str] = &["config", "log"];

fn denied(plugin: &str, capability: &str) -> HostError {
    HostError::Denied(format!(
        "plugin `{plugin}` was not granted `{capability}`; add it to the plugin's capabilities in config"
    ))
}

/// Links every capability's imports and WASI (which grants nothing by default).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    use super::bindings::kavro::plugin as wit;
    wit::types::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::log::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::config::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::kv::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::metrics::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::cache::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::http::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}
