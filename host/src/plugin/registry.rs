//! The plugin set: every component in the plugins folder, loaded with its
//! settings (from the config file, a `<name>.toml` beside it, or defaults),
//! ordered, and indexed per route and phase so the request path never
//! looks at a plugin that does not apply.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::artifacts::Urgency;
use super::caps::Shared;
use super::engine::Runtime;
use super::loaded::{Compiled, NeedsError, Plugin};
use super::phase::{PerPhase, Phase};
use crate::config::{self, Config, Diagnostic, PluginSettings, Reporter};
use crate::upstream::Upstream;

/// Plugin indices, in run order, for each phase.
pub type Chains = PerPhase<Vec<usize>>;

#[derive(Debug, Default)]
pub struct PluginSet {
    pub plugins: Vec<Arc<Plugin>>,
    /// Plugins that apply to every request (prime runs before routing).
    pub global: Chains,
    /// By route index: route-scoped prime plugins (run after routing),
    /// and the full prepare/present/package/post chains.
    pub per_route: Vec<Chains>,
    /// The plugin that answers each `!>` file directive. Such a plugin is
    /// in no present chain: it presents only the files that name it.
    pub directives: HashMap<String, usize>,
    /// Some plugin is scoped to `paths`.
    pub path_scoped: bool,
}

impl PluginSet {
    /// The chains for a request that matched `route`, or only the global ones.
    pub fn chains(&self, route: Option<usize>) -> &Chains {
        route
            .and_then(|r| self.per_route.get(r))
            .unwrap_or(&self.global)
    }

    /// The plugin answering directive `name` on `route`, if one does there.
    pub fn directive(&self, name: &str, route: Option<usize>) -> Option<usize> {
        let &i = self.directives.get(name)?;
        let scope = &self.plugins[i].settings.routes;
        match (scope, route) {
            (None, _) => Some(i),
            (Some(routes), Some(r)) if routes.contains(&r) => Some(i),
            _ => None,
        }
    }

    /// The plugins whose `paths` leave out both the request's path as it
    /// came (what routes and upstreams read) and as files are found
    /// (`plain`): a plugin that covers either runs.
    pub fn out_of_scope<'a>(
        &'a self,
        path: &'a str,
        plain: &'a str,
    ) -> impl Iterator<Item = usize> + 'a {
        self.plugins
            .iter()
            .enumerate()
            .filter(move |(_, p)| !p.settings.covers(path) && !p.settings.covers(plain))
            .map(|(i, _)| i)
    }

    fn index(plugins: Vec<Arc<Plugin>>, routes: usize) -> PluginSet {
        let mut set = PluginSet {
            per_route: vec![Chains::default(); routes],
            ..PluginSet::default()
        };
        for (i, p) in plugins.iter().enumerate() {
            let exported = p.phases;
            let directed = !p.manifest.directives.is_empty();
            set.path_scoped |= p.settings.paths.is_some();
            for name in &p.manifest.directives {
                set.directives.entry(name.clone()).or_insert(i);
            }
            // A route-scoped plugin's prime runs after routing, with the
            // route's chains; a global one's before, with the global chains.
            let add = |c: &mut Chains, prime: bool| {
                for phase in Phase::ALL {
                    let skipped =
                        (phase == Phase::Prime && !prime) || (phase == Phase::Present && directed);
                    if exported[phase] && !skipped {
                        c[phase].push(i);
                    }
                }
            };
            match &p.settings.routes {
                None => {
                    add(&mut set.global, true);
                    for c in &mut set.per_route {
                        add(c, false);
                    }
                }
                Some(routes) => {
                    for &r in routes {
                        if let Some(c) = set.per_route.get_mut(r) {
                            add(c, true);
                        }
                    }
                }
            }
        }
        set.plugins = plugins;
        set
    }
}

/// Where each plugin comes from before it is compiled.
struct Candidate {
    name: String,
    file: PathBuf,
    settings: PluginSettings,
}

fn error(file: &Path, message: impl Into<String>, hint: impl Into<String>) -> Diagnostic {
    Diagnostic {
        file: file.display().to_string(),
        position: None,
        field: String::new(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// Settings from `<stem>.toml` beside the component, if any.
pub fn sidecar(
    path: &Path,
    route_names: &HashMap<String, usize>,
) -> Result<Option<PluginSettings>, Vec<Diagnostic>> {
    let side = path.with_extension("toml");
    let Ok(text) = std::fs::read_to_string(&side) else {
        return Ok(None);
    };
    let file = side.display().to_string();
    let mut r = Reporter::new(&file, &text);
    let Some(section) = config::deserialize::<config::model::PluginSection>(&mut r) else {
        return Err(r.errors);
    };
    if section.name.is_some() || section.file.is_some() {
        r.error(
            section.name.as_ref().map(|n| n.span()),
            "name",
            "a settings file beside a plugin takes its name from the file",
            "remove `name` and `file`",
        );
    }
    let settings = config::plugin_settings(&mut r, "", section, route_names);
    if r.errors.is_empty() {
        Ok(Some(settings))
    } else {
        Err(r.errors)
    }
}

/// Finds the plugins in `dir` and pairs each with its settings.
fn discover(dir: &Path, config: &Config) -> Result<Vec<Candidate>, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let route_names: HashMap<String, usize> = config
        .routes
        .iter()
        .map(|r| (r.name.clone(), r.index))
        .collect();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "wasm"))
            .collect(),
        Err(e) => {
            return Err(vec![error(
                dir,
                format!("cannot read the plugins folder: {e}"),
                "create it, or point --plugins at the folder holding your .wasm files",
            )])
        }
    };
    files.sort();

    // One component may be configured several times, each entry a plugin
    // of its own with its own settings.
    let mut by_file: HashMap<PathBuf, Vec<(String, PluginSettings)>> = HashMap::new();
    for (name, s) in &config.plugins {
        let relative = s.file.clone().unwrap_or_else(|| format!("{name}.wasm"));
        let inside = Path::new(&relative).components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if !inside {
            errors.push(error(
                Path::new(&config.source),
                format!("plugin `{name}`: file `{relative}` is not inside the plugins folder"),
                "name the component by its path under the plugins folder, e.g. \"opt-in/tmpl.wasm\"",
            ));
            continue;
        }
        let file = dir.join(relative);
        if !file.is_file() {
            errors.push(error(
                Path::new(&config.source),
                format!(
                    "plugin `{name}` is configured but {} does not exist",
                    file.display()
                ),
                "put the component in the plugins folder or remove the entry",
            ));
            continue;
        }
        by_file
            .entry(file)
            .or_default()
            .push((name.clone(), s.clone()));
    }

    let mut out = Vec::new();
    for file in files {
        // A configured name claims its NAME.wasm even when its entry
        // names another file: the two would be one plugin twice.
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned());
        let claimed = stem
            .as_ref()
            .is_some_and(|n| config.plugins.contains_key(n));
        if claimed && !by_file.contains_key(&file) {
            continue;
        }
        if let Some(entries) = by_file.remove(&file) {
            out.extend(entries.into_iter().map(|(name, settings)| Candidate {
                name,
                file: file.clone(),
                settings,
            }));
            continue;
        }
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match sidecar(&file, &route_names) {
            Ok(s) => out.push(Candidate {
                name,
                file,
                settings: s.unwrap_or_default(),
            }),
            Err(mut e) => errors.append(&mut e),
        }
    }
    // Entries whose file sits elsewhere under the folder (`opt-in/x.wasm`),
    // after the folder's own, in path order.
    let mut elsewhere: Vec<_> = by_file.into_iter().collect();
    elsewhere.sort_by(|a, b| a.0.cmp(&b.0));
    for (file, entries) in elsewhere {
        out.extend(entries.into_iter().map(|(name, settings)| Candidate {
            name,
            file: file.clone(),
            settings,
        }));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// What a plugin's settings take from the server's when they say nothing:
/// the body limit outbound HTTP shares with prepare and present.
pub fn settle(settings: &mut PluginSettings, config: &Config) {
    settings
        .limits
        .max_body_bytes
        .get_or_insert(config.present_max_bytes);
}

/// Loads every plugin for `config` from `dir`: compiled in parallel (or from
/// the artifact cache), then linked and described. Any error refuses the set.
pub async fn load(
    dir: &Path,
    config: &Config,
    upstreams: &HashMap<String, Arc<Upstream>>,
    cache_dir: Option<&Path>,
    shared: &Shared,
    urgency: Urgency,
) -> Result<PluginSet, Vec<Diagnostic>> {
    let candidates = discover(dir, config)?;
    let routes = config.routes.iter().map(|r| r.index + 1).max().unwrap_or(0);
    if candidates.is_empty() {
        // No engine and no epoch thread for a host without plugins.
        return Ok(PluginSet::index(Vec::new(), routes));
    }
    let runtime = Runtime::get()
        .map_err(|e| vec![error(dir, format!("cannot start wasmtime: {e:#}"), "")])?;

    let compiled: Vec<anyhow::Result<Compiled>> = std::thread::scope(|s| {
        let handles: Vec<_> = candidates
            .iter()
            .map(|c| {
                let runtime = &runtime;
                s.spawn(move || {
                    let bytes = std::fs::read(&c.file)?;
                    Plugin::compile(runtime, &bytes, cache_dir, urgency)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("compiler crashed")))
            })
            .collect()
    });

    let mut errors = Vec::new();
    let mut plugins = Vec::new();
    for (mut c, compiled) in candidates.into_iter().zip(compiled) {
        settle(&mut c.settings, config);
        let result = match compiled {
            Ok(compiled) => {
                Plugin::link(
                    &runtime, &c.name, &c.file, compiled, c.settings, upstreams, shared,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(p) => plugins.push(Arc::new(p)),
            Err(e) => errors.push(error(
                &c.file,
                format!("plugin `{}` refused: {e:#}", c.name),
                match e.downcast_ref::<NeedsError>() {
                    Some(NeedsError::NotGranted { .. }) => format!(
                        "a plugin's settings are its [[plugins]] entry named `{0}` in the config, or {0}.toml beside it in the plugins folder",
                        c.name
                    ),
                    Some(NeedsError::Unknown { .. }) => {
                        "build it against this host's wit/, or run it on a host that has those capabilities".to_string()
                    }
                    None => "rebuild it against this host's wit/ (kavro:plugin) for wasm32-wasip2".to_string(),
                },
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Explicit priority first, then file-name order (the sort is stable).
    plugins.sort_by_key(|p| p.settings.priority.unwrap_or(0));
    check_directives(&plugins)?;
    Ok(PluginSet::index(plugins, routes))
}

/// Refuses two plugins answering the same `!>` directive: a file could not
/// say which it means.
fn check_directives(plugins: &[Arc<Plugin>]) -> Result<(), Vec<Diagnostic>> {
    let mut answered: HashMap<&str, &Plugin> = HashMap::new();
    let mut errors = Vec::new();
    for p in plugins {
        if !p.manifest.directives.is_empty() && !p.phases[Phase::Present] {
            errors.push(error(
                &p.file,
                format!(
                    "plugin `{}` answers directives but does not export present, which runs them",
                    p.name
                ),
                "implement present (on_directive in Rust), or declare no directives",
            ));
        }
        for name in &p.manifest.directives {
            if !crate::actions::directives::is_name(name) {
                errors.push(error(
                    &p.file,
                    format!(
                        "plugin `{}` answers `{name}`, which no `!>` line can name",
                        p.name
                    ),
                    "a directive name is letters, digits, `-` and `_`",
                ));
            }
            if let Some(first) = answered.insert(name, p) {
                errors.push(error(
                    &p.file,
                    format!(
                        "plugins `{}` and `{}` both answer the directive `{name}`",
                        first.name, p.name
                    ),
                    "load only one of them",
                ));
            }
        }
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(errors),
    }
}
