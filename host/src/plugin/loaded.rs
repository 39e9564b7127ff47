//! One loaded plugin version: its compiled component, the phases it
//! exports, its grants, and its pool of warm instances (`pool`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{bail, Context};
use wasmtime::component::{Component, InstancePre};
use wasmtime::Store;

use super::backoff::Backoff;
use super::bindings::{self, describe};
use super::call::Call;
use super::caps::{Capability, Granting, Shared, Views};
use super::engine::Runtime;
use super::epoch::{now_tick, ticks_for};
use super::exports::{self, Guests, PhaseIndices};
use super::failure::{Failure, FailureKind};
use super::instance::{Instance, Live};
use super::phase::Phases;
use super::pool::Pool;
use super::state::HostState;
use super::stats::PluginStats;
use crate::config::PluginSettings;
use crate::upstream::Upstream;

/// What a plugin says about itself (its `describe` export).
pub use super::bindings::types::Manifest;

/// A plugin's manifest asks for capabilities its settings do not grant.
#[derive(Debug, thiserror::Error)]
pub enum NeedsError {
    #[error("needs capabilities this host does not have: {unknown}; it has: {known}")]
    Unknown { unknown: String, known: String },
    #[error(
        "needs capabilities it was not granted: {list}; grant them with {how} in the plugin's settings"
    )]
    NotGranted { list: String, how: String },
}

/// A compiled component and the hash of its bytes.
#[derive(Clone)]
pub struct Compiled {
    pub component: Component,
    pub hash: String,
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
    indices: PhaseIndices,
    /// What its instances may use.
    views: Views,
    /// Its name, as its calls report it.
    call_name: Arc<str>,
    pool: Pool,
    pub stats: Arc<PluginStats>,
    /// Holds off new instances while the plugin keeps failing.
    pub backoff: Backoff,
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

/// The time a plugin's first instance and `describe` get at load: no
/// request waits on them, and a machine busy compiling other plugins must
/// not refuse one that instantiates in time when it serves.
fn load_deadline(settings: &PluginSettings) -> std::time::Duration {
    settings
        .limits
        .deadline
        .max(std::time::Duration::from_secs(10))
}

impl Plugin {
    /// Compiles (or loads the cached artifact of) a component; CPU-bound.
    pub fn compile(
        runtime: &Runtime,
        bytes: &[u8],
        cache_dir: Option<&Path>,
        urgency: super::artifacts::Urgency,
    ) -> anyhow::Result<Compiled> {
        let hash = super::artifacts::content_hash(bytes);
        if !bytes.starts_with(b"\0asm") {
            bail!("not a WebAssembly file");
        }
        let component = super::artifacts::load(runtime, cache_dir, bytes, &hash, urgency)
            .context("not a loadable WebAssembly component")?;
        Ok(Compiled { component, hash })
    }

    /// Links, instantiates once, asks the plugin to describe itself and
    /// checks its needs against its grants. The first instance stays warm.
    pub async fn link(
        runtime: &Runtime,
        name: &str,
        file: &Path,
        Compiled { component, hash }: Compiled,
        settings: PluginSettings,
        upstreams: &HashMap<String, Arc<Upstream>>,
        shared: &Shared,
    ) -> anyhow::Result<Plugin> {
        let phases = exported_phases(&component)?;
        let baseline = runtime.is_baseline(component.engine());
        let pre = runtime
            .linker_for(component.engine())
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("imports something this host does not provide; build it against the kavro:plugin WIT in this host's wit/ folder")?;
        let indices = exports::indices(&phases, &pre)?;
        let views = Views::new(
            &Granting {
                plugin: name,
                settings: &settings,
                upstreams,
            },
            shared,
        );
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
                directives: vec![],
            },
            phases,
            settings,
            loaded_at: SystemTime::now(),
            baseline,
            pre,
            indices,
            views,
            call_name: name.into(),
            pool,
            stats,
            backoff: Backoff::default(),
        };

        let mut first = plugin
            .instantiate(load_deadline(&plugin.settings))
            .await
            .context("failed to instantiate")?;
        let handle = first.instance_handle()?;
        let describe = describe::GuestIndices::new(&plugin.pre)?.load(first.store(), &handle)?;
        first.arm(load_deadline(&plugin.settings));
        let m = describe
            .call_describe(first.store())
            .await
            .map_err(anyhow::Error::from)
            .context("describe() failed")?;
        plugin.manifest = m;
        plugin.check_needs()?;
        // Describing itself is not a request: pooled without counting a use.
        plugin.pool.keep(first);
        Ok(plugin)
    }

    /// Refuses a plugin that needs capabilities its settings do not grant,
    /// saying how to grant each.
    fn check_needs(&self) -> anyhow::Result<()> {
        let mut unknown = Vec::new();
        let mut missing = Vec::new();
        for name in &self.manifest.capabilities {
            match Capability::from_name(name) {
                None => unknown.push(format!("\"{name}\"")),
                Some(c) if !c.granted(&self.settings) => missing.push(c),
                Some(_) => {}
            }
        }
        if !unknown.is_empty() {
            return Err(NeedsError::Unknown {
                unknown: unknown.join(", "),
                known: Capability::ALL
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into());
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|c| format!("\"{c}\"")).collect();
            let how: Vec<String> = missing.iter().map(|c| c.how_to_grant()).collect();
            return Err(NeedsError::NotGranted {
                list: list.join(", "),
                how: how.join(" and "),
            }
            .into());
        }
        Ok(())
    }

    /// A new instance, its initialisers run under `deadline`.
    async fn instantiate(&self, deadline: std::time::Duration) -> anyhow::Result<Instance> {
        let limits = &self.settings.limits;
        let mut store = Store::new(
            self.pre.engine(),
            HostState::new(
                self.views.clone(),
                Call::new(self.call_name.clone(), limits),
                limits.memory_bytes,
            )?,
        );
        store.limiter(|s| &mut s.limiter);
        super::epoch_policy::install(&mut store);
        // Instantiation runs guest code too: the same deadline and the same
        // full-speed allowance as a call.
        let call = &mut store.data_mut().call;
        call.call_tick = now_tick();
        call.deadline_tick = call.call_tick + ticks_for(deadline);
        store.set_epoch_deadline(1);
        self.stats.instances_live.fetch_add(1, Ordering::Relaxed);
        self.stats.instances_created.fetch_add(1, Ordering::Relaxed);
        let mut instance = Instance {
            live: Some(Box::new(Live {
                store,
                guests: Guests::default(),
            })),
            uses: 0,
            broken: false,
            stats: self.stats.clone(),
            call_started: std::time::Instant::now(),
        };
        // Instantiation runs guest code (start functions, initializers).
        let live = instance.live_mut();
        let running = super::epoch::Running::start();
        let handle = self.pre.instantiate_async(&mut live.store).await?;
        drop(running);
        let data = live.store.data_mut();
        data.handle = Some(handle);
        live.guests = exports::load(&self.indices, &mut live.store, &handle)?;
        Ok(instance)
    }

    /// An instance for one request: warm from the pool, or fresh.
    pub async fn checkout(&self) -> Result<Instance, Failure> {
        if let Some(i) = self.pool.take() {
            return Ok(i);
        }
        if !self.backoff.admits() {
            // Neither logged nor kept as the last error: the failures that
            // started the back-off were.
            return Err(Failure {
                kind: FailureKind::Backoff,
                detail: String::new(),
            });
        }
        self.instantiate(self.settings.limits.deadline)
            .await
            .map_err(|e| {
                self.backoff.failed(&self.name);
                Failure {
                    kind: FailureKind::Instantiate,
                    detail: format!("{e:#}"),
                }
            })
    }

    /// Returns an instance after its request (see [`Pool::give_back`]); a
    /// broken one counts towards a back-off, a sound one ends it.
    pub fn give_back(&self, instance: Instance) {
        if instance.broken {
            self.backoff.failed(&self.name);
        } else {
            self.backoff.succeeded();
        }
        self.pool.give_back(instance);
    }

    pub fn pooled(&self) -> usize {
        self.pool.warm()
    }
}
