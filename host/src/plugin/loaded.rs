//! One loaded plugin version: its compiled component, the phases it
//! exports, its grants, and its pool of warm instances (`pool`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{anyhow, bail};
use wasmtime::component::{Component, InstancePre};
use wasmtime::Store;

use super::bindings::{self, describe, package_phase, post, prepare, present, prime};
use super::caps::{Grants, Stores, ALWAYS_GRANTED};
use super::engine::{now_tick, ticks_for, Runtime};
use super::instance::{Guests, Instance, Live};
use super::phase::{Phase, Phases};
use super::pool::Pool;
use super::state::HostState;
use super::stats::PluginStats;
use crate::config::PluginSettings;

/// What a plugin says about itself (its `describe` export).
pub use super::bindings::types::Manifest;

/// Export lookups resolved once per version.
#[derive(Clone)]
struct Indices {
    prime: Option<prime::GuestIndices>,
    prepare: Option<prepare::GuestIndices>,
    present: Option<present::GuestIndices>,
    package: Option<package_phase::GuestIndices>,
    post: Option<post::GuestIndices>,
}

pub struct Plugin {
    pub name: String,
    pub file: PathBuf,
    pub hash: String,
    pub manifest: Manifest,
    pub phases: Phases,
    pub settings: PluginSettings,
    pub loaded_at: SystemTime,
    /// Runs baseline code until its optimized artifact is ready.
    pub baseline: bool,
    pre: InstancePre<HostState>,
    indices: Indices,
    grants: Arc<Grants>,
    pool: Pool,
    pub stats: Arc<PluginStats>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("phases", &self.phases)
            .finish()
    }
}

/// Reads the exports of a component and checks it speaks this host's
/// `kavro:plugin` version.
fn exported_phases(component: &Component) -> anyhow::Result<Phases> {
    let names: Vec<String> = component
        .component_type()
        .exports(component.engine())
        .map(|(name, _)| name.to_string())
        .collect();
    let has = |iface: &str| names.iter().any(|n| *n == bindings::export_name(iface));
    let ours: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(&format!("{}/", bindings::PACKAGE)))
        .collect();
    let foreign_version: Vec<&&String> = ours
        .iter()
        .filter(|n| !n.ends_with(&format!("@{}", bindings::VERSION)))
        .collect();
    if !foreign_version.is_empty() {
        bail!(
            "built against another version of {}: it exports {}; this host expects @{} (e.g. {})",
            bindings::PACKAGE,
            foreign_version
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            bindings::VERSION,
            bindings::export_name("prime")
        );
    }
    let phases = Phases::from_fn(|p| has(p.name()));
    if !phases.any() {
        bail!(
            "exports none of the phases (prime, prepare, present, package, post); it exports: [{}]. \
             Expected interfaces like {}",
            names.join(", "),
            bindings::export_name("prime")
        );
    }
    if !has("plugin") {
        bail!(
            "does not export {} (describe)",
            bindings::export_name("plugin")
        );
    }
    Ok(phases)
}

impl Plugin {
    /// Compiles (or loads the cached artifact of) a component; CPU-bound.
    pub fn compile(
        runtime: &Runtime,
        bytes: &[u8],
        cache_dir: Option<&Path>,
        urgency: super::artifacts::Urgency,
    ) -> anyhow::Result<(Component, String)> {
        let hash = super::artifacts::content_hash(bytes);
        if !bytes.starts_with(b"\0asm") {
            bail!("not a WebAssembly file");
        }
        let component = super::artifacts::load(runtime, cache_dir, bytes, &hash, urgency)
            .map_err(|e| anyhow!("not a loadable WebAssembly component: {e:#}"))?;
        Ok((component, hash))
    }

    /// Links, instantiates once, asks the plugin to describe itself and
    /// checks its needs against its grants. The first instance stays warm.
    pub async fn link(
        runtime: &Runtime,
        name: &str,
        file: &Path,
        component: Component,
        hash: String,
        settings: PluginSettings,
        stores: &Stores,
    ) -> anyhow::Result<Plugin> {
        let phases = exported_phases(&component)?;
        let baseline = runtime.is_baseline(component.engine());
        let pre = runtime
            .linker_for(component.engine())
            .instantiate_pre(&component).map_err(|e| {
            anyhow!("imports something this host does not provide ({e:#}); build it against the kavro:plugin WIT in this host's wit/ folder")
        })?;
        let indices = Indices {
            prime: phases[Phase::Prime]
                .then(|| prime::GuestIndices::new(&pre))
                .transpose()?,
            prepare: phases[Phase::Prepare]
                .then(|| prepare::GuestIndices::new(&pre))
                .transpose()?,
            present: phases[Phase::Present]
                .then(|| present::GuestIndices::new(&pre))
                .transpose()?,
            package: phases[Phase::Package]
                .then(|| package_phase::GuestIndices::new(&pre))
                .transpose()?,
            post: phases[Phase::Post]
                .then(|| post::GuestIndices::new(&pre))
                .transpose()?,
        };
        let grants = Arc::new(Grants::new(name, &settings, stores));
        let stats = Arc::new(PluginStats::default());
        let pool = Pool::new(&settings, stats.clone());
        let mut plugin = Plugin {
            name: name.to_string(),
            file: file.to_path_buf(),
            hash,
            manifest: Manifest {
                name: String::new(),
                version: String::new(),
                capabilities: vec![],
            },
            phases,
            settings,
            loaded_at: SystemTime::now(),
            baseline,
            pre,
            indices,
            grants,
            pool,
            stats,
        };

        let mut first = plugin
            .instantiate()
            .await
            .map_err(|e| anyhow!("failed to instantiate: {e:#}"))?;
        let handle = first.instance_handle()?;
        let describe = describe::GuestIndices::new(&plugin.pre)?.load(first.store(), &handle)?;
        first.arm(plugin.settings.limits.deadline);
        let m = describe
            .call_describe(first.store())
            .await
            .map_err(|e| anyhow!("describe() failed: {e:#}"))?;
        plugin.manifest = m;
        let missing: Vec<&String> = plugin
            .manifest
            .capabilities
            .iter()
            .filter(|c| {
                !ALWAYS_GRANTED.contains(&c.as_str()) && !plugin.settings.capabilities.contains(*c)
            })
            .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let how: Vec<String> = missing
                .iter()
                .map(|c| match c.as_str() {
                    "env" => "env = [\"VAR\", ...]".to_string(),
                    "fs" => "dirs = { \"/guest\" = \"./host\" }".to_string(),
                    other => format!("capabilities = [\"{other}\"]"),
                })
                .collect();
            bail!(
                "needs capabilities it was not granted: {list}; grant them with {} in the plugin's settings",
                how.join(" and ")
            );
        }
        // Describing itself is not a request: pooled without counting a use.
        plugin.pool.keep(first);
        Ok(plugin)
    }

    async fn instantiate(&self) -> anyhow::Result<Instance> {
        let limits = &self.settings.limits;
        let mut store = Store::new(
            self.pre.engine(),
            HostState::new(self.grants.clone(), limits)?,
        );
        store.limiter(|s| &mut s.limiter);
        super::epoch_policy::install(&mut store);
        // Instantiation runs guest code too: the same deadline and the same
        // full-speed allowance as a call.
        let data = store.data_mut();
        data.call_tick = now_tick();
        data.deadline_tick = data.call_tick + ticks_for(limits.deadline);
        store.set_epoch_deadline(1);
        self.stats.instances_live.fetch_add(1, Ordering::Relaxed);
        self.stats.instances_created.fetch_add(1, Ordering::Relaxed);
        let mut instance = Instance {
            live: Some(Box::new(Live {
                store,
                guests: Guests {
                    prime: None,
                    prepare: None,
                    present: None,
                    package: None,
                    post: None,
                },
            })),
            uses: 0,
            broken: false,
            stats: self.stats.clone(),
            call_started: std::time::Instant::now(),
        };
        // Instantiation runs guest code (start functions, initializers).
        let live = instance.live_mut();
        let running = super::engine::Running::start();
        let handle = self.pre.instantiate_async(&mut live.store).await?;
        drop(running);
        let data = live.store.data_mut();
        data.handle = Some(handle);
        let s = &mut live.store;
        let i = &self.indices;
        live.guests = Guests {
            prime: i
                .prime
                .as_ref()
                .map(|x| x.load(&mut *s, &handle))
                .transpose()?,
            prepare: i
                .prepare
                .as_ref()
                .map(|x| x.load(&mut *s, &handle))
                .transpose()?,
            present: i
                .present
                .as_ref()
                .map(|x| x.load(&mut *s, &handle))
                .transpose()?,
            package: i
                .package
                .as_ref()
                .map(|x| x.load(&mut *s, &handle))
                .transpose()?,
            post: i
                .post
                .as_ref()
                .map(|x| x.load(&mut *s, &handle))
                .transpose()?,
        };
        Ok(instance)
    }

    /// An instance for one request: warm from the pool, or fresh.
    pub async fn checkout(&self) -> anyhow::Result<Instance> {
        match self.pool.take() {
            Some(i) => Ok(i),
            None => self.instantiate().await,
        }
    }

    /// Returns an instance after its request (see [`Pool::give_back`]).
    pub fn give_back(&self, instance: Instance) {
        self.pool.give_back(instance);
    }

    pub fn pooled(&self) -> usize {
        self.pool.warm()
    }
}
