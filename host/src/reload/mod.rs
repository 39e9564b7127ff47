//! Reloading config and plugins while serving. Every trigger (`POST
//! /reload` on the admin listener, `SIGHUP`, a file change in the plugins
//! folder or of the config file) runs one pipeline: parse the
//! config, load and validate every plugin (compile, instantiate, describe,
//! check capabilities), then swap the whole set in one atomic store. A
//! request keeps the set it started with, so nothing in flight changes; an
//! invalid config or plugin is refused and the running set stays. The KV
//! store is the host's, so its data outlives every swap.
//!
//! A swapped-in set is then watched for `[server] reload_verify_s`: if its
//! requests fail clearly more often than the previous set's, the previous
//! set is swapped back ([`verify`]). Every attempt is recorded
//! ([`history`]) and logged as a lifecycle event.

pub mod history;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::config::{Config, Diagnostic};
use crate::plugin::artifacts::Urgency;
use crate::plugin::caps::Shared;
use crate::plugin::registry;
use crate::services::Services;
use crate::Active;

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// What a watched file looks like on disk: a file replaced by rename has a
/// new inode, one rewritten in place a new length or modification time.
type FileState = (PathBuf, u64, u64, Option<SystemTime>);

/// A plugin's component or its settings.
fn is_plugin_file(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "wasm" || x == "toml")
}

fn is_component(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "wasm")
}

/// The state of every `.wasm` and `.toml` in the plugins folder and of the
/// config file. The watcher reloads only when it changes: inotify also
/// reports files being opened and read, which every reload does itself.
fn watched_state(plugins_dir: &Path, config: Option<&PathBuf>) -> Vec<FileState> {
    use std::os::unix::fs::MetadataExt;
    let entries = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let mut paths = Vec::new();
    for p in entries(plugins_dir) {
        if p.is_dir() {
            // Components one folder down (`opt-in/x.wasm`), which entries
            // may name.
            paths.extend(entries(&p).into_iter().filter(|p| is_component(p)));
        } else if is_plugin_file(&p) {
            paths.push(p);
        }
    }
    paths.sort();
    paths.extend(config.cloned());
    paths
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::metadata(&p).ok()?;
            Some((p, m.ino(), m.len(), m.modified().ok()))
        })
        .collect()
}

pub struct Reloader {
    pub config_path: Option<PathBuf>,
    pub plugins_dir: PathBuf,
    pub cache_dir: Option<PathBuf>,
    pub shared: Arc<Shared>,
    pub active: Arc<ArcSwap<Active>>,
    /// One reload at a time; a second trigger waits and then loads afresh.
    running: tokio::sync::Mutex<()>,
    pub history: Arc<history::History>,
    /// While a swapped-in set is watched: the set a rollback returns to,
    /// and until when. A reload during the watch keeps it, so that two
    /// quick reloads (a file change and a SIGHUP) return to the set that
    /// served well, not to the first of the two.
    baseline: Mutex<Option<(Arc<Active>, std::time::Instant)>>,
}

impl Reloader {
    pub fn new(
        config_path: Option<PathBuf>,
        plugins_dir: PathBuf,
        cache_dir: Option<PathBuf>,
        shared: Arc<Shared>,
        active: Arc<ArcSwap<Active>>,
    ) -> Reloader {
        Reloader {
            config_path,
            plugins_dir,
            cache_dir,
            shared,
            active,
            running: tokio::sync::Mutex::new(()),
            history: Arc::default(),
            baseline: Mutex::new(None),
        }
    }

    /// Loads and validates everything, then swaps it in; on any error the
    /// running set stays and the errors are returned (and remembered).
    pub async fn reload(&self, trigger: &'static str) -> Result<(), Vec<Diagnostic>> {
        let _one = self.running.lock().await;
        let id = self.history.next_id();
        let current = self.active.load_full();
        let mut attempt = history::Attempt {
            id,
            at: SystemTime::now(),
            trigger,
            old_version: current.version.clone(),
            new_version: None,
            result: history::Result::Applied,
            reason: "ok",
            errors: Vec::new(),
        };
        match self.load().await {
            Ok(next) => {
                let tls_listen = |a: &Active| a.config.tls.as_ref().map(|t| t.listen.clone());
                if next.config.listen != current.config.listen
                    || next.config.admin != current.config.admin
                    || tls_listen(&next) != tls_listen(&current)
                    || next.config.proxy_protocol != current.config.proxy_protocol
                    || next.config.cluster != current.config.cluster
                {
                    tracing::warn!(
                        trigger,
                        "listen, tls.listen (proxy_protocol included), admin addresses and \
                         [cluster] change only on restart; the rest is reloaded"
                    );
                }
                let next = Arc::new(next);
                attempt.new_version = Some(next.version.clone());
                self.active.store(next.clone());
                tracing::info!(
                    event = "reload_applied",
                    id,
                    trigger,
                    old_version = %current.version,
                    new_version = %next.version,
                    plugins = next.plugins.plugins.len(),
                    routes = next.config.routes.len(),
                    "reloaded: new requests use the new set"
                );
                self.history.record(attempt);
                let window = next.config.reload_verify;
                if !window.is_zero() && tokio::runtime::Handle::try_current().is_ok() {
                    let now = std::time::Instant::now();
                    let baseline = {
                        let mut b = self.baseline.lock();
                        let set = match &*b {
                            Some((set, until)) if now < *until => set.clone(),
                            _ => current,
                        };
                        *b = Some((set.clone(), now + window));
                        set
                    };
                    tokio::spawn(verify::watch(
                        self.active.clone(),
                        self.history.clone(),
                        id,
                        baseline,
                        next,
                        window,
                    ));
                }
                Ok(())
            }
            Err((reason, errors)) => {
                attempt.result = history::Result::Refused;
                attempt.reason = reason;
                attempt.errors = errors.iter().map(|d| d.to_string()).collect();
                for e in &attempt.errors {
                    tracing::error!(
                        event = "reload_refused",
                        id,
                        trigger,
                        reason,
                        "reload refused, the running set stays: {e}"
                    );
                }
                self.history.record(attempt);
                Err(errors)
            }
        }
    }

    /// The new set, or why not: a reason code and the errors.
    async fn load(&self) -> Result<Active, (&'static str, Vec<Diagnostic>)> {
        let invalid = |d: crate::config::Diagnostics| ("config_invalid", d.0);
        let mut config = Config::load(self.config_path.as_deref()).map_err(invalid)?;
        // Addresses given on the command line keep winning over the file.
        let current = self.active.load();
        for l in &config.server_listen {
            if !current.config.listen.contains(l) {
                tracing::warn!(
                    event = "listener_waits_for_restart",
                    listener = %l,
                    "a server's new listener opens only when the host restarts"
                );
            }
        }
        config.listen = current.config.listen.clone();
        config.admin = current.config.admin.clone();
        config.threads = current.config.threads;
        config.work_stealing = current.config.work_stealing;
        let services = Services::build(&config).map_err(invalid)?;
        let plugins = registry::load(
            &self.plugins_dir,
            &config,
            &services.upstreams,
            self.cache_dir.as_deref(),
            &self.shared,
            Urgency::Swap,
        )
        .await
        .map_err(|e| ("plugin_invalid", e))?;
        Ok(Active::new(config, services, plugins))
    }

    pub fn last(&self) -> Option<history::Attempt> {
        self.history.last()
    }

    pub fn last_refusal(&self) -> Option<history::Attempt> {
        self.history.last_refusal()
    }

    /// Watches for a `.wasm` or `.toml` in the plugins folder, or the
    /// config file, being added, replaced or removed; the returned service
    /// reloads on each change. Events are debounced, so a file still being
    /// written is read once it has settled (and a file that is still
    /// incomplete then is refused like any broken one).
    pub fn watch_files(self: &Arc<Self>) -> anyhow::Result<FileWatch> {
        use notify_debouncer_mini::notify::{self, PollWatcher, RecursiveMode};
        use notify_debouncer_mini::{new_debouncer, new_debouncer_opt, Config};
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let sender = |tx: tokio::sync::mpsc::UnboundedSender<_>| {
            move |result| {
                let _ = tx.send(result);
            }
        };
        let mut debouncer = new_debouncer(Duration::from_millis(50), sender(tx.clone()))?;
        let watched_config = self.config_path.as_ref().map(|p| absolute(p));
        if self.plugins_dir.is_dir() {
            debouncer
                .watcher()
                .watch(&self.plugins_dir, RecursiveMode::NonRecursive)?;
            // Components one folder down (`opt-in/`); a folder that cannot
            // be watched is read on the next reload anyway.
            for dir in std::fs::read_dir(&self.plugins_dir).into_iter().flatten() {
                let path = dir.map(|d| d.path()).unwrap_or_default();
                if path.is_dir() {
                    let _ = debouncer
                        .watcher()
                        .watch(&path, RecursiveMode::NonRecursive);
                }
            }
        }
        // The config file is polled, not watched through its folder: the
        // folder often holds files that change all the time (logs beside
        // the config), and inotify would wake us for every write to them.
        // Polling the path also sees a file replaced by rename.
        let mut config_poll = None;
        if let Some(config) = &watched_config {
            // Contents, not only times: mtimes are compared in whole seconds.
            let poll = notify::Config::default()
                .with_poll_interval(Duration::from_millis(250))
                .with_compare_contents(true);
            let mut d = new_debouncer_opt::<_, PollWatcher>(
                Config::default()
                    .with_timeout(Duration::from_millis(50))
                    .with_notify_config(poll),
                sender(tx),
            )?;
            d.watcher().watch(config, RecursiveMode::NonRecursive)?;
            config_poll = Some(d);
        }
        let plugins_dir = absolute(&self.plugins_dir);
        let last = watched_state(&plugins_dir, watched_config.as_ref());
        Ok(FileWatch {
            reloader: self.clone(),
            watching: Mutex::new(Some(Watching {
                _watchers: (debouncer, config_poll),
                events,
                plugins_dir,
                config: watched_config,
                last,
            })),
        })
    }

    /// Reloads when a plugin that was swapped in on baseline code has its
    /// optimized artifact: the reload loads it, like any other change.
    pub fn reload_when_optimized(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        // The hook runs on the optimizing compile's own thread, which has
        // no runtime and nothing else to do: a current-thread runtime there
        // is cheap beside the seconds the compile took.
        crate::plugin::artifacts::on_optimized(move || {
            let Some(me) = me.upgrade() else { return };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => {
                    let _ = rt.block_on(me.reload("optimized code ready"));
                }
                Err(e) => tracing::warn!("cannot reload for optimized code: {e}"),
            }
        });
    }

    /// Reloads on every SIGHUP, from a thread of its own: the handler is
    /// installed on that thread's runtime now, before serving, where a
    /// background service would start only once Pingora runs.
    pub fn on_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Installed now, before serving, so a SIGHUP never takes the
        // default action (terminating the process).
        let mut hup = rt.block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        })?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("kavro-sighup".into())
            .spawn(move || {
                rt.block_on(async move {
                    while hup.recv().await.is_some() {
                        let _ = me.reload("SIGHUP").await;
                    }
                })
            })?;
        Ok(())
    }
}

type Watchers = (
    notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
    Option<notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::PollWatcher>>,
);

/// Reloads on file changes, as a Pingora background service: it starts
/// with the server and stops at shutdown, so no reload begins while the
/// host drains.
pub struct FileWatch {
    reloader: Arc<Reloader>,
    /// Taken by the service when it starts.
    watching: Mutex<Option<Watching>>,
}

struct Watching {
    /// Dropping them stops the watching.
    _watchers: Watchers,
    events: tokio::sync::mpsc::UnboundedReceiver<notify_debouncer_mini::DebounceEventResult>,
    plugins_dir: PathBuf,
    config: Option<PathBuf>,
    last: Vec<FileState>,
}

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for FileWatch {
    async fn start(&self, mut shutdown: pingora_core::server::ShutdownWatch) {
        let Some(mut w) = self.watching.lock().take() else {
            return;
        };
        loop {
            let result = tokio::select! {
                _ = shutdown.changed() => return,
                result = w.events.recv() => result,
            };
            let Some(result) = result else { return };
            let Ok(events) = result else { continue };
            let relevant = events.iter().any(|e| {
                let p = absolute(&e.path);
                let parent = p.parent();
                Some(&p) == w.config.as_ref()
                    || (parent == Some(w.plugins_dir.as_path()) && is_plugin_file(&p))
                    || (parent.and_then(Path::parent) == Some(w.plugins_dir.as_path())
                        && is_component(&p))
            });
            if !relevant {
                continue;
            }
            let now = watched_state(&w.plugins_dir, w.config.as_ref());
            if now != w.last {
                w.last = now;
                let _ = self.reloader.reload("file change").await;
            }
        }
    }
}
