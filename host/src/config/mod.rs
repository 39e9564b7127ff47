//! Configuration: the TOML file (or the embedded default), validated into
//! plain data. Every error names the file, the line, the field path and a
//! hint. Validation reads local files (a static root must be a folder) but
//! does no network or DNS I/O; [`crate::services`] builds what the config
//! describes.

mod diagnostic;
pub mod graph;
pub mod model;
pub mod tls;
mod upstream;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use diagnostic::{Diagnostic, Diagnostics, Reporter};
pub use model::{FailurePolicy, Isolation};
pub use upstream::{
    Admission, Balance, Check, Eject, HashKey, HostHeader, Retries, RetryOverrides,
    TimeoutOverrides, Timeouts, UpstreamSettings,
};

use crate::actions::fastcgi;
use crate::actions::respond::{Redirect, Respond};
use crate::actions::static_files::StaticRoot;
use crate::cache::RoutePolicy;
use crate::plugin::caps::Capability;
use crate::routing::{HostPattern, PathPattern, Route};

/// How long past its freshness a response with a validator is kept to be
/// revalidated, unless the route says.
const DEFAULT_CACHE_KEEP: Duration = Duration::from_secs(600);

/// The embedded default config, used without `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");
pub const DEFAULT_SOURCE: &str = "<embedded default>";

/// A validated config: plain data, read from a file without network I/O.
/// The upstreams' balancers and the FastCGI pools it describes are built
/// from it by [`crate::services`].
#[derive(Debug)]
pub struct Config {
    pub source: String,
    /// A hash of the text the config was parsed from.
    pub text_hash: String,
    pub listen: Vec<String>,
    /// Plain listeners that serve plain HTTP even when TLS redirects the rest.
    pub no_redirect: Vec<String>,
    /// Listeners (plain or TLS) whose connections start with a PROXY
    /// protocol header.
    pub proxy_protocol: Vec<String>,
    pub tls: Option<tls::TlsConfig>,
    pub threads: usize,
    pub work_stealing: bool,
    pub present_max_bytes: usize,
    pub h2c: bool,
    pub shutdown_grace: Duration,
    /// None: 8 per worker thread (see [`Config::post_slots`]).
    pub post_concurrency: Option<usize>,
    /// Finished requests one post call carries at the most.
    pub post_batch: usize,
    /// Request line and header sizes; over them, 414 or 431.
    pub head_limits: crate::protect::HeadLimits,
    /// Timeouts and counts that bound what one client holds.
    pub client: crate::protect::ClientLimits,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: crate::protect::forwarded::TrustedProxies,
    /// How long a reloaded set is watched before it is kept for good.
    pub reload_verify: Duration,
    pub log_format: model::LogFormat,
    pub admin: Option<String>,
    pub upstreams: BTreeMap<String, UpstreamSettings>,
    /// In the order of the file (`[[servers]]` routes after the top-level ones).
    pub routes: Vec<Route<ActionSpec>>,
    /// The `[[servers]]` entries, by index.
    pub servers: Vec<crate::routing::ServerScope>,
    /// Their listeners (also in `listen`, which a --listen replaces).
    pub server_listen: Vec<String>,
    /// Plugin entries from the config file, by plugin name.
    pub plugins: BTreeMap<String, PluginSettings>,
    /// Response cache size; read at start (a reload keeps the running cache).
    pub cache_max_bytes: u64,
    pub cache_max_object_bytes: usize,
    /// `None`: Kavro compresses nothing.
    pub compression: Option<Arc<crate::compression::Settings>>,
    /// Memory for compressed forms kept; read at start.
    pub compression_memory_bytes: u64,
    /// `None`: no realtime route and no `[realtime]` table.
    pub publish: Option<PublishSettings>,
    /// `None`: this host keeps its state to itself.
    pub cluster: Option<ClusterSettings>,
}

/// `[cluster]`, checked: read at start (a reload keeps the fleet).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSettings {
    pub redis: String,
    pub prefix: String,
}

/// A route's action as configured.
#[derive(Debug)]
pub enum ActionSpec {
    /// Only the route's prepare plugins answer; 404 otherwise.
    None,
    /// To the upstream of this name (declared).
    Proxy(String),
    Static(Arc<StaticRoot>),
    Respond(Arc<Respond>),
    Redirect(Arc<Redirect>),
    FastCgi(Box<fastcgi::Settings>),
    Realtime(Arc<RealtimeSettings>),
}

/// A realtime route's settings; its backend is a declared upstream.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    pub backend: String,
    pub path_on_backend: String,
    pub max_message_bytes: usize,
}

/// The hub's publish endpoint, on when the config has realtime routes or a
/// `[realtime]` table.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    pub path: String,
    /// Where the secret comes from, for messages.
    pub secret_env: String,
    /// `None`: no secret is set, and publishing answers 503.
    pub secret: Option<String>,
}

/// How one plugin is applied: from the config file, a sidecar file, or defaults.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    pub file: Option<String>,
    pub priority: Option<i32>,
    /// Route indices the plugin applies to; `None` is every route.
    pub routes: Option<Vec<usize>>,
    /// Request paths the plugin applies to, within its routes; `None` is
    /// every path.
    pub paths: Option<Vec<PathPattern>>,
    /// What `capabilities = [...]` grants; env and fs are granted by
    /// their own settings.
    pub capabilities: BTreeSet<Capability>,
    pub isolation: Isolation,
    pub failure: FailurePolicy,
    pub limits: Limits,
    pub values: BTreeMap<String, String>,
    /// Environment variables granted, with their values at load.
    pub env: Vec<(String, String)>,
    /// Read-only directories granted: (host path, guest path).
    pub dirs: Vec<(std::path::PathBuf, String)>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub deadline: Duration,
    pub memory_bytes: usize,
    pub pool_size: usize,
    pub max_uses: u64,
    /// An instance whose linear memory has grown this much since its first
    /// request is replaced after a request.
    pub max_growth_bytes: usize,
    /// `None`: the server's `present_max_bytes`.
    pub max_body_bytes: Option<usize>,
    pub max_headers: usize,
    /// Metric series (distinct counter and histogram names) the plugin may
    /// create; past them, recording a new name returns an error.
    pub max_metric_series: usize,
    /// CPU time a phase call may use on a worker thread before it moves to
    /// the slow lane.
    pub worker_cpu: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            pool_size: 64,
            max_uses: 100_000,
            max_growth_bytes: 4 << 20,
            max_body_bytes: None,
            max_headers: 100,
            max_metric_series: 100,
            worker_cpu: Duration::from_micros(300),
        }
    }
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            file: None,
            priority: None,
            routes: None,
            paths: None,
            capabilities: BTreeSet::new(),
            isolation: Isolation::Pooled,
            failure: FailurePolicy::FailClosed,
            limits: Limits::default(),
            values: BTreeMap::new(),
            env: Vec::new(),
            dirs: Vec::new(),
        }
    }
}

impl PluginSettings {
    /// Whether the plugin applies to a request for `path`.
    pub fn covers(&self, path: &str) -> bool {
        self.paths
            .as_ref()
            .is_none_or(|paths| paths.iter().any(|p| p.matches(path)))
    }
}

impl Config {
    /// Worker threads: `threads`, or one per core when it is 0.
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Post chains that may run at once: `post_concurrency`, or 8 per
    /// worker thread (post is mostly CPU; the margin covers calls that
    /// wait, and keeps fresh instances of a slow-starting guest from all
    /// starting at once).
    pub fn post_slots(&self) -> usize {
        self.post_concurrency
            .unwrap_or(8 * self.worker_threads())
            .max(1)
    }

    /// Reads and validates `path` (TOML, or JSON by its extension), or
    /// the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, Diagnostics> {
        let (file, text) = Config::read(path)?;
        Config::parse(&file, &text)
    }

    /// The canonical JSON graph of `path`'s config, once it is valid.
    pub fn canonical(path: Option<&Path>) -> Result<String, Diagnostics> {
        let (file, text) = Config::read(path)?;
        Config::parse(&file, &text)?;
        let text = match graph::is_json(&file) {
            true => graph::toml_from_json(&file, &text)?,
            false => text,
        };
        let mut r = Reporter::new(&file, &text);
        let raw = deserialize(&mut r).ok_or_else(|| Diagnostics(r.errors.clone()))?;
        Ok(graph::canonical(&file, raw))
    }

    /// The config's name and text.
    fn read(path: Option<&Path>) -> Result<(String, String), Diagnostics> {
        let Some(p) = path else {
            return Ok((DEFAULT_SOURCE.to_string(), DEFAULT_CONFIG.to_string()));
        };
        let text = std::fs::read_to_string(p).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: p.display().to_string(),
                position: None,
                field: String::new(),
                message: format!("cannot read the config file: {e}"),
                hint: "check the path given to --config".into(),
            }])
        })?;
        Ok((p.display().to_string(), text))
    }

    /// Validates a config's text: JSON when `file` ends in `.json`, else TOML.
    pub fn parse(file: &str, text: &str) -> Result<Config, Diagnostics> {
        let json = graph::is_json(file);
        let text = match json {
            true => std::borrow::Cow::Owned(graph::toml_from_json(file, text)?),
            false => std::borrow::Cow::Borrowed(text),
        };
        let mut r = Reporter::new(file, &text);
        r.json = json;
        let raw: model::ConfigFile = match deserialize(&mut r) {
            Some(raw) => raw,
            None => return Err(Diagnostics(r.errors)),
        };
        let config = compile(&mut r, raw);
        if r.errors.is_empty() {
            Ok(config)
        } else {
            Err(Diagnostics(r.errors))
        }
    }
}

/// Deserializes TOML text, reporting the field path and location of the first error.
pub fn deserialize<T: serde::de::DeserializeOwned>(r: &mut Reporter<'_>) -> Option<T> {
    let de = toml::Deserializer::new(r.text);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().to_string();
            let hint = if message.starts_with("unknown field") {
                "remove the key or fix its spelling; the message lists the keys allowed here"
            } else if message.starts_with("missing field") {
                "add the field; it has no default"
            } else if message.contains("unknown variant") {
                "use one of the values the message lists"
            } else if inner.span().is_some() && path == "." {
                "this is not valid TOML; check quotes, brackets and `=`"
            } else {
                "check the value's type against the docs (docs/config.md)"
            };
            let field = if path == "." { String::new() } else { path };
            r.error(inner.span(), field, message, hint);
            None
        }
    }
}

/// The longest `websocket_idle_timeout_ms`.
const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;

fn compile(r: &mut Reporter<'_>, raw: model::ConfigFile) -> Config {
    if raw.schema > graph::SCHEMA {
        r.error(
            None,
            "schema",
            format!(
                "written for graph schema {}; this kavro-host reads schema {} and older",
                raw.schema,
                graph::SCHEMA
            ),
            "upgrade kavro-host, or compile the config with the kavro-host that serves it",
        );
    }
    let mut no_redirect = Vec::new();
    let listen: Vec<String> = raw
        .server
        .listen
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let addr = toml::Spanned::new(l.span(), l.get_ref().address().to_string());
            check_addr(r, &addr, &format!("server.listen[{i}]"));
            if let model::ListenEntry::Table(t) = l.get_ref() {
                if t.redirect == Some(false) {
                    no_redirect.push(t.address.clone());
                }
            }
            addr.into_inner()
        })
        .collect();
    if listen.is_empty() {
        r.error(
            None,
            "server.listen",
            "no listen address",
            "add one, e.g. listen = [\"127.0.0.1:8080\"]",
        );
    }
    let admin = raw.admin.listen.map(|l| {
        check_addr(r, &l, "admin.listen");
        l.into_inner()
    });

    let proxy_protocol = raw
        .server
        .listen
        .iter()
        .chain(raw.tls.iter().flat_map(|t| &t.listen))
        .filter(|l| l.get_ref().proxy_protocol())
        .map(|l| l.get_ref().address().to_string())
        .collect();
    let base = base_dir(r.file);
    let tls = raw.tls.and_then(|t| tls::compile(r, t, &base));
    upstream::check_timeouts(r, "timeouts", &raw.timeouts);
    if raw.server.post_concurrency == Some(0) {
        r.error(
            None,
            "server.post_concurrency",
            "post_concurrency = 0 would never run a post chain",
            "leave it out for the default (8 per worker thread), or set at least 1",
        );
    }
    if !(1..=256).contains(&raw.server.post_batch) {
        r.error(
            None,
            "server.post_batch",
            format!(
                "post_batch = {} is not a number of requests a post call can carry",
                raw.server.post_batch
            ),
            "set 1 (each request alone) to 256; the default is 32",
        );
    }

    let server = &raw.server;
    for (key, value) in [
        (
            "max_request_line_bytes",
            server.max_request_line_bytes as u64,
        ),
        ("max_header_bytes", server.max_header_bytes as u64),
        ("max_headers", server.max_headers as u64),
        ("header_timeout_ms", server.header_timeout_ms),
        ("body_timeout_ms", server.body_timeout_ms),
        (
            "websocket_idle_timeout_ms",
            server.websocket_idle_timeout_ms,
        ),
        (
            "max_requests_per_connection",
            server.max_requests_per_connection.into(),
        ),
        (
            "max_connections_per_ip",
            server.max_connections_per_ip.map_or(1, u64::from),
        ),
    ] {
        if value == 0 {
            r.error(
                None,
                format!("server.{key}"),
                format!("{key} = 0 would refuse every request"),
                "leave it out for the default, or set a positive limit",
            );
        }
    }

    if server.websocket_idle_timeout_ms > WEEK_MS {
        r.error(
            None,
            "server.websocket_idle_timeout_ms",
            format!("{} ms is over a week", server.websocket_idle_timeout_ms),
            "a WebSocket idle for longer is gone; clients that keep one open send pings",
        );
    }

    let trusted_proxies =
        match crate::protect::forwarded::TrustedProxies::parse(&raw.server.trusted_proxies) {
            Ok(t) => t,
            Err(e) => {
                r.error(
                    None,
                    "server.trusted_proxies",
                    e,
                    "list the proxies in front of Kavro as CIDRs (\"10.0.0.0/8\") or addresses",
                );
                Default::default()
            }
        };

    let mut upstreams = BTreeMap::new();
    for (name, u) in &raw.upstreams {
        if let Some(settings) = upstream::compile(r, name, u, &raw.timeouts, &base) {
            upstreams.insert(name.clone(), settings);
        }
    }

    let mut routes = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, rs) in raw.routes.into_iter().enumerate() {
        let field = format!("routes[{i}]");
        let name = rs.name.clone().unwrap_or_else(|| format!("route-{i}"));
        if names.insert(name.clone(), i).is_some() {
            r.error(
                None,
                format!("{field}.name"),
                format!("route name `{name}` is used twice"),
                "give every route a unique name",
            );
        }
        if let Some(mut route) = compile_route(r, &field, i, name, rs, &upstreams, &base) {
            route.max_request_bytes = route.max_request_bytes.or(raw.server.max_request_bytes);
            routes.push(route);
        }
    }
    let top_level = names.values().map(|i| i + 1).max().unwrap_or(0);
    let (servers, server_listen) = compile_servers(
        r,
        raw.servers,
        &mut routes,
        &mut names,
        top_level,
        &upstreams,
        &base,
        raw.server.max_request_bytes,
    );
    // A server's listeners serve its own routes: never redirected to HTTPS.
    no_redirect.extend(server_listen.iter().cloned());
    check_server_listeners(r, &server_listen, tls.as_ref(), admin.as_deref());
    let mut listen = listen;
    for l in &server_listen {
        if !listen.contains(l) {
            listen.push(l.clone());
        }
    }

    let realtime_routes = routes
        .iter()
        .any(|r| matches!(r.action, ActionSpec::Realtime(_)));
    let publish = raw
        .realtime
        .or_else(|| realtime_routes.then(model::RealtimeSection::default))
        .map(|s| publish_settings(r, s));

    let cluster = raw.cluster.and_then(|c| match redis::Client::open(c.redis.get_ref().as_str()) {
        Ok(_) => Some(ClusterSettings {
            redis: c.redis.into_inner(),
            prefix: c.key_prefix,
        }),
        Err(e) => {
            r.error(
                Some(c.redis.span()),
                "cluster.redis",
                format!("`{}` is not a Redis URL: {e}", c.redis.get_ref()),
                "write redis://host:port, redis://:password@host:port/db or unix:///path/to/redis.sock",
            );
            None
        }
    });

    let mut plugins = BTreeMap::new();
    for (i, p) in raw.plugins.into_iter().enumerate() {
        let field = format!("plugins[{i}]");
        let Some(name) = p.name.clone() else {
            r.error(
                None,
                format!("{field}.name"),
                "a plugin entry needs a name",
                "add name = \"...\"; it matches <name>.wasm in the plugins folder",
            );
            continue;
        };
        let settings = plugin_settings(r, &field, p, &names);
        if plugins.insert(name.get_ref().clone(), settings).is_some() {
            r.error(
                Some(name.span()),
                format!("{field}.name"),
                format!("plugin `{}` is configured twice", name.get_ref()),
                "merge the two entries",
            );
        }
    }

    Config {
        source: r.file.to_string(),
        text_hash: crate::plugin::artifacts::content_hash(r.text.as_bytes()),
        listen,
        servers,
        server_listen,
        no_redirect,
        proxy_protocol,
        tls,
        threads: raw.server.threads,
        work_stealing: raw.server.work_stealing,
        present_max_bytes: raw.server.present_max_bytes,
        h2c: raw.server.h2c,
        shutdown_grace: Duration::from_secs(raw.server.shutdown_grace_s),
        post_concurrency: raw.server.post_concurrency,
        post_batch: raw.server.post_batch,
        head_limits: crate::protect::HeadLimits {
            max_request_line_bytes: raw.server.max_request_line_bytes,
            max_header_bytes: raw.server.max_header_bytes,
            max_headers: raw.server.max_headers,
        },
        client: crate::protect::ClientLimits {
            header_timeout: Duration::from_millis(raw.server.header_timeout_ms),
            body_timeout: Duration::from_millis(raw.server.body_timeout_ms),
            websocket_idle_timeout: Duration::from_millis(raw.server.websocket_idle_timeout_ms),
            keepalive_timeout_s: raw.server.keepalive_timeout_s,
            max_requests_per_connection: raw.server.max_requests_per_connection,
            max_connections_per_ip: raw.server.max_connections_per_ip,
        },
        trusted_proxies,
        reload_verify: Duration::from_secs(raw.server.reload_verify_s),
        log_format: raw.server.log_format,
        admin,
        upstreams,
        routes,
        plugins,
        cache_max_bytes: raw.cache.max_bytes,
        cache_max_object_bytes: raw.cache.max_object_bytes,
        compression: compression_settings(r, &raw.compression),
        compression_memory_bytes: raw.compression.memory_bytes,
        publish,
        cluster,
    }
}

/// `[compression]`, checked: levels within each coding's range, media
/// types written `type/subtype` or `type/*`.
fn compression_settings(
    r: &mut Reporter<'_>,
    c: &model::CompressionSection,
) -> Option<Arc<crate::compression::Settings>> {
    for (name, level, max) in [
        ("gzip", c.gzip, 9),
        ("brotli", c.brotli, 11),
        ("zstd", c.zstd, 19),
    ] {
        if level > max {
            r.error(
                None,
                format!("compression.{name}"),
                format!("level {level} is over {name}'s highest, {max}"),
                "use 1 (fastest) to the highest, or 0 to never offer the coding",
            );
        }
    }
    let types: Vec<String> = match &c.types {
        Some(t) => t.iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
        None => crate::compression::DEFAULT_TYPES
            .iter()
            .map(|t| t.to_string())
            .collect(),
    };
    for t in &types {
        let valid = t.split_once('/').is_some_and(|(kind, sub)| {
            !kind.is_empty()
                && kind != "*"
                && !sub.is_empty()
                && !sub.contains('/')
                && (sub == "*" || !sub.contains('*'))
        }) && !t.contains([';', ' ', ',']);
        if !valid {
            r.error(
                None,
                "compression.types",
                format!("`{t}` is not a media type"),
                "write type/subtype (\"text/html\") or type/* (\"text/*\"), without parameters",
            );
        }
    }
    if c.once_max_bytes > c.memory_bytes {
        r.error(
            None,
            "compression.once_max_bytes",
            format!(
                "{} bytes is over compression.memory_bytes ({})",
                c.once_max_bytes, c.memory_bytes
            ),
            "a body compressed once must fit the memory that keeps it: lower once_max_bytes or raise memory_bytes",
        );
    }
    c.enabled.then(|| {
        Arc::new(crate::compression::Settings {
            min_bytes: c.min_bytes,
            types,
            levels: [c.brotli, c.zstd, c.gzip],
            once_max_bytes: c.once_max_bytes,
        })
    })
}

/// The publish endpoint's settings; the secret is read from the
/// environment here, at start and at each reload.
fn publish_settings(r: &mut Reporter<'_>, s: model::RealtimeSection) -> PublishSettings {
    if !s.publish_path.starts_with('/') || s.publish_path.contains(['?', '#', '*']) {
        r.error(
            None,
            "realtime.publish_path",
            format!("`{}` is not a path", s.publish_path),
            "use an absolute path such as \"/publish\"",
        );
    }
    let secret = s
        .secret
        .or_else(|| std::env::var(&s.secret_env).ok())
        .filter(|v| !v.is_empty());
    PublishSettings {
        path: s.publish_path,
        secret_env: s.secret_env,
        secret,
    }
}

/// The folder that relative paths in a config file start from.
pub(crate) fn base_dir(file: &str) -> std::path::PathBuf {
    match Path::new(file).parent() {
        Some(p) if file != DEFAULT_SOURCE => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

/// `host:port`, checked by its form only: names are resolved when the
/// server binds or an upstream's balancer is built, not while validating.
fn check_addr(r: &mut Reporter<'_>, addr: &toml::Spanned<String>, field: &str) -> bool {
    if host_port(addr.get_ref()) {
        return true;
    }
    r.error(
        Some(addr.span()),
        field,
        format!("`{}` is not a usable address", addr.get_ref()),
        "write host:port, e.g. \"127.0.0.1:8080\"",
    );
    false
}

/// An IP address or a host name, then a port. Names are taken as they
/// resolve in practice: underscores (container names) and a final dot
/// (a fully qualified name) are allowed.
/// Whether a connection that came in on `local` is one of `listeners`'
/// (a listener on 0.0.0.0 or :: takes every address of its port).
pub fn listens_on(listeners: &[std::net::SocketAddr], local: std::net::SocketAddr) -> bool {
    listeners
        .iter()
        .any(|a| a.port() == local.port() && (a.ip().is_unspecified() || a.ip() == local.ip()))
}

/// Listen addresses as socket addresses (a name resolved).
pub fn resolve_listeners(addresses: &[String]) -> Vec<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    addresses
        .iter()
        .flat_map(|a| a.to_socket_addrs().into_iter().flatten())
        .collect()
}

fn host_port(addr: &str) -> bool {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    port.parse::<u16>().is_ok_and(|p| p > 0)
        && !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(label)
}

fn compile_route(
    r: &mut Reporter<'_>,
    field: &str,
    index: usize,
    name: String,
    rs: model::RouteSection,
    upstreams: &BTreeMap<String, UpstreamSettings>,
    base: &Path,
) -> Option<Route<ActionSpec>> {
    let host = match &rs.host {
        None => HostPattern::Any,
        Some(h) => match HostPattern::parse(h.get_ref()) {
            Ok(p) => p,
            Err(e) => {
                r.error(
                    Some(h.span()),
                    format!("{field}.host"),
                    e,
                    "use a name (example.com) or a wildcard (*.example.com)",
                );
                return None;
            }
        },
    };
    let path = match &rs.path {
        None => PathPattern::Prefix(String::from("/")),
        Some(p) => match PathPattern::parse(p.get_ref()) {
            Ok(p) => p,
            Err(e) => {
                r.error(
                    Some(p.span()),
                    format!("{field}.path"),
                    e,
                    "use an exact path (/about) or a prefix ending in /* (/api/*)",
                );
                return None;
            }
        },
    };
    let mut methods = Vec::new();
    for (i, m) in rs.methods.iter().enumerate() {
        match http::Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
            Ok(m) => methods.push(m),
            Err(_) => r.error(
                Some(m.span()),
                format!("{field}.methods[{i}]"),
                format!("`{}` is not an HTTP method", m.get_ref()),
                "use GET, POST, PUT, ...",
            ),
        }
    }

    let mut actions = Vec::new();
    if let Some(up) = &rs.proxy {
        match upstreams.get(up.get_ref()) {
            Some(_) => actions.push(ActionSpec::Proxy(up.get_ref().clone())),
            None => {
                let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
                r.error(
                    Some(up.span()),
                    format!("{field}.proxy"),
                    format!("upstream `{}` is not declared", up.get_ref()),
                    if known.is_empty() {
                        format!(
                            "declare it: [upstreams.{}] targets = [\"host:port\"]",
                            up.get_ref()
                        )
                    } else {
                        format!("declared upstreams: {}", known.join(", "))
                    },
                );
                return None;
            }
        }
    }
    if let Some(s) = rs.static_files {
        let root = base.join(s.root.get_ref());
        match StaticRoot::new(
            &root,
            s.index,
            s.strip_prefix,
            s.precompressed,
            s.directives,
        ) {
            Ok(root) => actions.push(ActionSpec::Static(Arc::new(root))),
            Err(e) => {
                r.error(
                    Some(s.root.span()),
                    format!("{field}.static.root"),
                    e,
                    "point root at an existing directory (relative paths start at the config file's folder)",
                );
                return None;
            }
        }
    }
    if let Some(s) = rs.fastcgi {
        let script_root = s
            .script_root
            .as_ref()
            .map(|p| std::path::PathBuf::from(p.get_ref()));
        if let (Some(raw), Some(p)) = (&s.script_root, &script_root) {
            if !p.is_absolute() {
                r.error(
                    Some(raw.span()),
                    format!("{field}.fastcgi.script_root"),
                    format!("script_root `{}` is not an absolute path", p.display()),
                    "write the document root as the FastCGI server sees it, e.g. \"/var/www/html\"",
                );
                return None;
            }
        }
        let settings = fastcgi::Settings {
            address: fastcgi::Address::parse(s.address.get_ref()),
            root: base.join(s.root.get_ref()),
            script_root,
            index: s.index,
            extension: s.extension,
            split_path_info: s.split_path_info,
            front_controller: s.front_controller,
            check_exists: s.check_exists,
            timeout: Duration::from_millis(s.timeout_ms),
            max_connections: s.max_connections,
            idle_timeout: Duration::from_millis(s.idle_timeout_ms.max(10)),
            max_queue: s.max_queue,
            queue_timeout: Duration::from_millis(s.queue_timeout_ms),
            max_request_bytes: s.max_request_bytes,
            max_response_bytes: s.max_response_bytes,
            params: s.params.into_iter().collect(),
        };
        match settings.validated() {
            Ok(settings) => actions.push(ActionSpec::FastCgi(Box::new(settings))),
            Err(e) => {
                r.error(
                    Some(s.root.span()),
                    format!("{field}.fastcgi"),
                    e,
                    "root is the PHP document root (relative paths start at the config file's folder); max_connections is at least 1",
                );
                return None;
            }
        }
    }
    if let Some(s) = rs.respond {
        match Respond::new(*s.status.get_ref(), &s.headers, s.body) {
            Ok(resp) => actions.push(ActionSpec::Respond(Arc::new(resp))),
            Err(e) => {
                r.error(
                    Some(s.status.span()),
                    format!("{field}.respond"),
                    e,
                    "status is 100-999; header names and values must be valid HTTP",
                );
                return None;
            }
        }
    }
    if let Some(s) = rs.redirect {
        match Redirect::new(*s.status.get_ref(), s.to) {
            Ok(red) => actions.push(ActionSpec::Redirect(Arc::new(red))),
            Err(e) => {
                r.error(
                    Some(s.status.span()),
                    format!("{field}.redirect"),
                    e,
                    "redirect statuses are 301, 302, 303, 307 and 308",
                );
                return None;
            }
        }
    }
    if let Some(s) = rs.realtime {
        if !upstreams.contains_key(s.backend.get_ref()) {
            r.error(
                Some(s.backend.span()),
                format!("{field}.realtime.backend"),
                format!("upstream `{}` is not declared", s.backend.get_ref()),
                "the backend is an upstream: declare [upstreams.<name>] targets = [\"host:port\"]",
            );
            return None;
        }
        if !s.path_on_backend.starts_with('/') || s.max_message_bytes == 0 {
            r.error(
                None,
                format!("{field}.realtime"),
                "path_on_backend must start with / and max_message_bytes be at least 1",
                "leave them out for the defaults (/v1/realtime, 65536)",
            );
            return None;
        }
        actions.push(ActionSpec::Realtime(Arc::new(RealtimeSettings {
            backend: s.backend.into_inner(),
            path_on_backend: s.path_on_backend,
            max_message_bytes: s.max_message_bytes,
        })));
    }
    if actions.len() > 1 {
        r.error(
            None,
            field.to_string(),
            format!("route `{name}` has {} actions", actions.len()),
            "give a route one of proxy, static, fastcgi, respond, redirect or realtime",
        );
        return None;
    }
    let retries = rs
        .retries
        .as_ref()
        .map(|s| upstream::route_retries(r, field, s));
    let timeouts = rs.timeouts.as_ref().map(|t| {
        upstream::check_timeouts(r, &format!("{field}.timeouts"), t);
        TimeoutOverrides::of(t)
    });
    if let Some(c) = &rs.cache {
        if let Some(interim) = c.statuses.iter().find(|s| (100..200).contains(*s)) {
            r.error(
                None,
                format!("{field}.cache.statuses"),
                format!("{interim} is an interim (1xx) status, which is never stored"),
                "list final statuses only, e.g. statuses = [200, 301, 404]",
            );
        }
    }
    let cache = match rs.cache {
        None => None,
        Some(c) => match c.ttl.get_ref().parse() {
            Ok(ttl) => {
                let mut window =
                    |v: &Option<toml::Spanned<model::DurationValue>>, name, default| {
                        v.as_ref().map_or(default, |v| {
                            tls::duration(r, v, &format!("{field}.cache.{name}"))
                        })
                    };
                let stale_while_revalidate = window(
                    &c.stale_while_revalidate,
                    "stale_while_revalidate",
                    Duration::ZERO,
                );
                let stale_if_error = window(&c.stale_if_error, "stale_if_error", Duration::ZERO);
                let keep = window(&c.keep, "keep", DEFAULT_CACHE_KEEP);
                Some(Arc::new(RoutePolicy {
                    ttl,
                    statuses: c.statuses,
                    query: c.query,
                    origin_headers: c.origin_headers,
                    set_cookie: c.set_cookie,
                    stale_while_revalidate,
                    stale_if_error,
                    keep,
                }))
            }
            Err(e) => {
                r.error(
                    Some(c.ttl.span()),
                    format!("{field}.cache.ttl"),
                    e,
                    "write seconds (60) or a duration such as \"500ms\", \"10s\", \"5m\"",
                );
                return None;
            }
        },
    };
    Some(Route {
        name,
        index,
        host,
        path,
        methods,
        priority: rs.priority,
        action: actions.pop().unwrap_or(ActionSpec::None),
        cache,
        timeouts,
        retries,
        max_request_bytes: rs.max_request_bytes,
        compress: rs.compress,
        client_cache: rs
            .client_cache
            .as_ref()
            .and_then(|v| client_cache(r, &format!("{field}.client_cache"), v)),
        server: None,
    })
}

/// `[[servers]]`: each entry's listeners and host names, and its routes
/// (indexed after the top-level ones, from `first`) into `routes`. Two
/// entries may share a listener only for different host names.
#[allow(clippy::too_many_arguments)]
fn compile_servers(
    r: &mut Reporter<'_>,
    entries: Vec<model::ServerEntry>,
    routes: &mut Vec<Route<ActionSpec>>,
    names: &mut HashMap<String, usize>,
    first: usize,
    upstreams: &BTreeMap<String, UpstreamSettings>,
    base: &Path,
    max_request_bytes: Option<u64>,
) -> (Vec<crate::routing::ServerScope>, Vec<String>) {
    let mut scopes = Vec::new();
    let mut all_listen = Vec::new();
    // (listener, host name or None for any) already claimed, by entry.
    let mut claims: Vec<(std::net::SocketAddr, Option<HostPattern>, usize)> = Vec::new();
    let mut index = first;
    for (s, entry) in entries.into_iter().enumerate() {
        let field = format!("servers[{s}]");
        if s >= 64 {
            r.error(
                None,
                field,
                "more than 64 servers",
                "merge servers that share listeners",
            );
            break;
        }
        if entry.listen.is_empty() {
            r.error(
                None,
                format!("{field}.listen"),
                "a server needs a listener",
                "add one, e.g. listen = [\"0.0.0.0:8081\"]",
            );
        }
        let mut listeners = Vec::new();
        for (k, l) in entry.listen.iter().enumerate() {
            match l.get_ref().parse::<std::net::SocketAddr>() {
                Ok(a) => {
                    listeners.push(a);
                    all_listen.push(l.get_ref().clone());
                }
                Err(_) => r.error(
                    Some(l.span()),
                    format!("{field}.listen[{k}]"),
                    format!("`{}` is not an IP address and port", l.get_ref()),
                    "a server's listener is an address it binds, e.g. \"0.0.0.0:8081\" or \"[::]:8081\"",
                ),
            }
        }
        let mut hostnames = Vec::new();
        for (k, h) in entry.hostnames.iter().enumerate() {
            match HostPattern::parse(h.get_ref()) {
                Ok(p) => hostnames.push(p),
                Err(e) => r.error(
                    Some(h.span()),
                    format!("{field}.hostnames[{k}]"),
                    e,
                    "write a host name (example.com) or a wildcard (*.example.com)",
                ),
            }
        }
        // As matched: `*` (any host) claims every name.
        let names_claimed: Vec<(Option<HostPattern>, String)> =
            match hostnames.is_empty() || hostnames.contains(&HostPattern::Any) {
                true => vec![(None, "every host".to_string())],
                false => hostnames
                    .iter()
                    .cloned()
                    .zip(entry.hostnames.iter().map(|h| h.get_ref().clone()))
                    .map(|(p, shown)| (Some(p), shown))
                    .collect(),
            };
        for &a in &listeners {
            for (name, shown) in &names_claimed {
                let taken = claims
                    .iter()
                    .find(|(b, n, _)| *b == a && (n.is_none() || name.is_none() || n == name));
                if let Some((_, _, other)) = taken {
                    let what = shown;
                    r.error(
                        None,
                        format!("{field}.listen"),
                        format!("servers[{other}] already answers {a} for {what}"),
                        "two servers share a listener only with different hostnames",
                    );
                } else {
                    claims.push((a, name.clone(), s));
                }
            }
        }
        for (j, rs) in entry.routes.into_iter().enumerate() {
            let field = format!("{field}.routes[{j}]");
            let name = rs
                .name
                .clone()
                .unwrap_or_else(|| format!("server-{s}-route-{j}"));
            if names.insert(name.clone(), index).is_some() {
                r.error(
                    None,
                    format!("{field}.name"),
                    format!("route name `{name}` is used twice"),
                    "give every route a unique name",
                );
            }
            if let Some(mut route) = compile_route(r, &field, index, name, rs, upstreams, base) {
                route.max_request_bytes = route.max_request_bytes.or(max_request_bytes);
                route.server = Some(s as u8);
                routes.push(route);
            }
            index += 1;
        }
        scopes.push(crate::routing::ServerScope {
            listeners,
            hostnames,
        });
    }
    (scopes, all_listen)
}

/// Refuses a server listener that another listener of the host (TLS, the
/// admin API) would bind too: the same port on the same address, or on
/// any address.
fn check_server_listeners(
    r: &mut Reporter<'_>,
    servers: &[String],
    tls: Option<&tls::TlsConfig>,
    admin: Option<&str>,
) {
    let others: Vec<(&str, &str)> = tls
        .iter()
        .flat_map(|t| t.listen.iter().map(|l| ("[tls] listen", l.as_str())))
        .chain(admin.map(|a| ("[admin] listen", a)))
        .collect();
    for l in servers {
        let Ok(a) = l.parse::<std::net::SocketAddr>() else {
            continue;
        };
        for (what, o) in &others {
            let Ok(b) = o.parse::<std::net::SocketAddr>() else {
                continue;
            };
            let overlap = a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified());
            if overlap {
                r.error(
                    None,
                    "servers",
                    format!("the server listener {l} is also {what} {o}"),
                    "give the server a port of its own",
                );
            }
        }
    }
}

/// A route's `client_cache` as the Cache-Control value it stands for.
fn client_cache(
    r: &mut Reporter<'_>,
    field: &str,
    v: &toml::Spanned<toml::Value>,
) -> Option<http::HeaderValue> {
    let value = match v.get_ref() {
        toml::Value::String(s) => match s.as_str() {
            "none" => Some("no-store".to_string()),
            "changing" => Some("max-age=120".to_string()),
            "full" => Some("public, max-age=604800, immutable".to_string()),
            _ => None,
        },
        toml::Value::Integer(n) if *n >= 0 => Some(format!("max-age={n}")),
        _ => None,
    };
    if value.is_none() {
        r.error(
            Some(v.span()),
            field.to_string(),
            format!("`{}` is not a client cache preference", v.get_ref()),
            "client_cache = \"none\" (no-store), \"changing\" (2 minutes), \"full\" (a week, immutable) or a number of seconds",
        );
    }
    value.map(|v| http::HeaderValue::from_str(&v).expect("ASCII"))
}

/// Validates one plugin entry (from the config file or a sidecar file).
pub fn plugin_settings(
    r: &mut Reporter<'_>,
    field: &str,
    p: model::PluginSection,
    route_names: &HashMap<String, usize>,
) -> PluginSettings {
    let mut settings = PluginSettings {
        file: p.file,
        priority: p.priority,
        isolation: p.isolation,
        failure: p.failure,
        ..PluginSettings::default()
    };
    if let Some(routes) = p.routes {
        let mut idx = Vec::new();
        for (i, name) in routes.iter().enumerate() {
            match route_names.get(name.get_ref()) {
                Some(&n) => idx.push(n),
                None => r.error(
                    Some(name.span()),
                    format!("{field}.routes[{i}]"),
                    format!("no route is named `{}`", name.get_ref()),
                    "name the route with name = \"...\" in its [[routes]] entry",
                ),
            }
        }
        settings.routes = Some(idx);
    }
    if let Some(paths) = p.paths {
        let mut patterns = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            match PathPattern::parse(path.get_ref()) {
                Ok(pattern) => patterns.push(pattern),
                Err(e) => r.error(
                    Some(path.span()),
                    format!("{field}.paths[{i}]"),
                    e.to_string(),
                    "write a path as routes do: \"/exact\", \"/prefix/*\" or \"/*.html\"",
                ),
            }
        }
        settings.paths = Some(patterns);
    }
    for (i, c) in p.capabilities.iter().enumerate() {
        match Capability::from_name(c.get_ref()) {
            Some(cap) if cap.listed() => {
                settings.capabilities.insert(cap);
            }
            Some(cap) => r.error(
                Some(c.span()),
                format!("{field}.capabilities[{i}]"),
                format!("`{cap}` cannot be listed in capabilities"),
                format!("grant it with {}", cap.how_to_grant()),
            ),
            None => r.error(
                Some(c.span()),
                format!("{field}.capabilities[{i}]"),
                format!("unknown capability `{}`", c.get_ref()),
                format!(
                    "capabilities are: {}; {}",
                    Capability::ALL
                        .iter()
                        .filter(|c| c.listed() && !c.always())
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    Capability::ALL
                        .iter()
                        .filter(|c| !c.listed())
                        .map(|c| format!("{c} is granted with {}", c.how_to_grant()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    for (i, name) in p.env.iter().enumerate() {
        match std::env::var(name.get_ref()) {
            Ok(v) => settings.env.push((name.get_ref().clone(), v)),
            Err(_) => r.error(
                Some(name.span()),
                format!("{field}.env[{i}]"),
                format!(
                    "`{}` is not set in kavro-host's environment",
                    name.get_ref()
                ),
                "set it where kavro-host starts, or remove it from env",
            ),
        }
    }
    let base = base_dir(r.file);
    for (guest, host) in &p.dirs {
        let path = base.join(host.get_ref());
        if !guest.starts_with('/') {
            r.error(
                Some(host.span()),
                format!("{field}.dirs.{guest}"),
                format!("`{guest}` is not an absolute path"),
                "name the directory as the plugin sees it, e.g. \"/data\" = \"./data\"",
            );
        } else if !path.is_dir() {
            r.error(
                Some(host.span()),
                format!("{field}.dirs.{guest}"),
                format!("`{}` is not a directory", path.display()),
                "point it at an existing directory (relative paths start at this file's folder)",
            );
        } else {
            settings.dirs.push((path, guest.clone()));
        }
    }
    let l = &mut settings.limits;
    if let Some(ms) = p.limits.deadline_ms {
        l.deadline = Duration::from_millis(ms.max(1));
    }
    if let Some(mb) = p.limits.memory_mb {
        l.memory_bytes = (mb.clamp(1, 4096) as usize) << 20;
    }
    if let Some(n) = p.limits.pool_size {
        l.pool_size = n;
    }
    if let Some(n) = p.limits.max_uses {
        l.max_uses = n.max(1);
    }
    if let Some(mb) = p.limits.max_growth_mb {
        l.max_growth_bytes = match mb {
            0 => usize::MAX,
            mb => (mb.min(4096) as usize) << 20,
        };
    }
    if let Some(kb) = p.limits.max_body_kb {
        l.max_body_bytes = Some((kb.min(1 << 30) as usize) << 10);
    }
    if let Some(n) = p.limits.max_headers {
        l.max_headers = n;
    }
    if let Some(n) = p.limits.max_metric_series {
        l.max_metric_series = n;
    }
    if let Some(us) = p.limits.worker_cpu_us {
        l.worker_cpu = Duration::from_micros(us.max(1));
    }
    settings.values = p
        .config
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect();
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::parse(DEFAULT_SOURCE, DEFAULT_CONFIG).unwrap();
        assert_eq!(c.listen, vec!["127.0.0.1:8080"]);
        assert_eq!(c.routes.len(), 2);
    }

    #[test]
    fn addresses_are_checked_by_their_form_without_resolving() {
        for ok in [
            "127.0.0.1:80",
            "[::1]:8080",
            "backend.internal:9000",
            "localhost:1",
        ] {
            assert!(host_port(ok), "{ok}");
        }
        for bad in [
            "",
            "localhost",
            "host:0",
            "host:99999",
            ":80",
            "a b:80",
            "-x.com:80",
        ] {
            assert!(!host_port(bad), "{bad}");
        }
        // A name no resolver knows is still a valid config: it is resolved
        // when the upstream's balancer is built.
        let text = "[upstreams.a]\ntargets = [\"surely-not-resolvable.invalid:80\"]\n";
        let c = Config::parse("k.toml", text).unwrap();
        assert_eq!(
            c.upstreams["a"].targets,
            ["surely-not-resolvable.invalid:80"]
        );
        let e = Config::parse("k.toml", "[upstreams.a]\ntargets = [\"no-port\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("upstreams.a.targets[0]"), "{e}");
        assert!(e.contains("not a usable address"), "{e}");
    }

    #[test]
    fn unknown_key_names_line_field_and_hint() {
        let text = "[server]\nlisten = [\"127.0.0.1:1\"]\nbogus = 1\n";
        let e = Config::parse("k.toml", text).unwrap_err().to_string();
        assert!(e.contains("k.toml:3:1"), "{e}");
        assert!(e.contains("server.bogus"), "{e}");
        assert!(e.contains("unknown field"), "{e}");
        assert!(e.contains("hint:"), "{e}");
    }

    #[test]
    fn undeclared_upstream_is_an_error_with_its_line() {
        let text = "[[routes]]\npath = \"/*\"\nproxy = \"nowhere\"\n";
        let e = Config::parse("k.toml", text).unwrap_err().to_string();
        assert!(e.contains("k.toml:3:9"), "{e}");
        assert!(e.contains("routes[0].proxy"), "{e}");
        assert!(e.contains("upstream `nowhere` is not declared"), "{e}");
    }

    #[test]
    fn post_slots_default_to_eight_per_thread_and_zero_is_refused() {
        let c = Config::parse("k.toml", "[server]\nthreads = 3\n").unwrap();
        assert_eq!(c.post_slots(), 24);
        let c = Config::parse("k.toml", "[server]\npost_concurrency = 5\n").unwrap();
        assert_eq!(c.post_slots(), 5);
        let e = Config::parse("k.toml", "[server]\npost_concurrency = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.post_concurrency"), "{e}");
        assert!(e.contains("hint:"), "{e}");
    }

    #[test]
    fn post_batches_default_to_32_and_carry_1_to_256() {
        assert_eq!(Config::parse("k.toml", "").unwrap().post_batch, 32);
        let c = Config::parse(
            "k.toml",
            "[server]
post_batch = 1
",
        )
        .unwrap();
        assert_eq!(c.post_batch, 1);
        for bad in [0, 257] {
            let e = Config::parse(
                "k.toml",
                &format!(
                    "[server]
post_batch = {bad}
"
                ),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("server.post_batch"), "{e}");
            assert!(e.contains("hint:"), "{e}");
        }
    }

    #[test]
    fn client_limits_have_defaults_and_refuse_zero() {
        let c = Config::parse("k.toml", "").unwrap();
        assert_eq!(c.client, crate::protect::ClientLimits::default());
        let text = "[server]\nmax_request_bytes = 100\nkeepalive_timeout_s = 0\n\
                    [[routes]]\npath = \"/a\"\nrespond = { body = \"a\" }\nmax_request_bytes = 5\n\
                    [[routes]]\npath = \"/b\"\nrespond = { body = \"b\" }\n";
        let c = Config::parse("k.toml", text).unwrap();
        let limits: Vec<_> = c.routes.iter().map(|r| r.max_request_bytes).collect();
        assert_eq!(limits, [Some(5), Some(100)]);
        assert_eq!(c.client.keepalive_timeout_s, 0);
        for key in [
            "header_timeout_ms",
            "body_timeout_ms",
            "websocket_idle_timeout_ms",
            "max_requests_per_connection",
            "max_connections_per_ip",
        ] {
            let e = Config::parse("k.toml", &format!("[server]\n{key} = 0\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("server.{key}")), "{e}");
        }
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = Config::parse("k.toml", "[server\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("k.toml:1:"), "{e}");
    }

    #[test]
    fn two_actions_on_one_route_are_refused() {
        let text = "[upstreams.a]\ntargets=[\"127.0.0.1:1\"]\n[[routes]]\nproxy=\"a\"\nrespond={body=\"x\"}\n";
        let e = Config::parse("k.toml", text).unwrap_err().to_string();
        assert!(e.contains("2 actions"), "{e}");
    }
}
