//! The config file's shape. Every struct refuses unknown keys so that a typo
//! is an error with a location, not a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The graph schema the config is written for (`graph::SCHEMA`).
    #[serde(default = "schema")]
    pub schema: u32,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSection>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    /// Servers of their own: routes answered only on their listeners.
    #[serde(default)]
    pub servers: Vec<ServerEntry>,
    #[serde(default)]
    pub plugins: Vec<PluginSection>,
    #[serde(default)]
    pub cache: CacheSection,
    pub tls: Option<TlsSection>,
    /// Every upstream's timeouts, unless it or a route sets its own.
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    /// The realtime hub's publish endpoint.
    pub realtime: Option<RealtimeSection>,
    /// State shared with other kavro-hosts through Redis.
    pub cluster: Option<ClusterSection>,
    /// Responses compressed by Accept-Encoding.
    #[serde(default)]
    pub compression: CompressionSection,
}

fn schema() -> u32 {
    super::graph::SCHEMA
}

/// `[compression]`: gzip, brotli and zstd by Accept-Encoding, on by default.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Bodies known to be shorter go as they are.
    #[serde(default = "default_compress_min")]
    pub min_bytes: u64,
    /// Media types compressed (`text/html`, or `text/*`); replaces the
    /// default list.
    pub types: Option<Vec<String>>,
    /// Levels; 0 never offers the coding.
    #[serde(default = "default_gzip_level")]
    pub gzip: u32,
    #[serde(default = "default_brotli_level")]
    pub brotli: u32,
    #[serde(default = "default_zstd_level")]
    pub zstd: u32,
    /// Memory for the compressed forms of static files and stored
    /// responses, which are compressed once; read at start.
    #[serde(default = "default_compress_memory")]
    pub memory_bytes: u64,
    /// Static files and stored responses up to this size are compressed
    /// once and kept; larger ones are compressed as they are sent.
    #[serde(default = "default_compress_once_max")]
    pub once_max_bytes: u64,
}

impl Default for CompressionSection {
    fn default() -> Self {
        CompressionSection {
            enabled: true,
            min_bytes: default_compress_min(),
            types: None,
            gzip: default_gzip_level(),
            brotli: default_brotli_level(),
            zstd: default_zstd_level(),
            memory_bytes: default_compress_memory(),
            once_max_bytes: default_compress_once_max(),
        }
    }
}

fn default_compress_min() -> u64 {
    256
}
fn default_gzip_level() -> u32 {
    6
}
fn default_brotli_level() -> u32 {
    4
}
fn default_zstd_level() -> u32 {
    3
}
fn default_compress_memory() -> u64 {
    64 << 20
}
fn default_compress_once_max() -> u64 {
    8 << 20
}

/// `[cluster]`: a fleet of hosts sharing KV data, realtime publishes and
/// cache purges through Redis.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// `redis://[:password@]host:port[/db]`.
    pub redis: Spanned<String>,
    /// Put before every key and the events channel, so that fleets can
    /// share one Redis.
    #[serde(default = "default_cluster_prefix")]
    pub key_prefix: String,
}

fn default_cluster_prefix() -> String {
    "kavro:".into()
}

/// `[realtime]`: how the application publishes to the hub's groups.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeSection {
    /// `POST` here on the traffic listeners publishes.
    #[serde(default = "default_publish_path")]
    pub publish_path: String,
    /// The environment variable holding the publish secret.
    #[serde(default = "default_secret_env")]
    pub secret_env: String,
    /// The secret itself, in place of the environment variable.
    pub secret: Option<String>,
}

impl Default for RealtimeSection {
    /// What a config with realtime routes and no `[realtime]` table gets.
    fn default() -> Self {
        RealtimeSection {
            publish_path: default_publish_path(),
            secret_env: default_secret_env(),
            secret: None,
        }
    }
}

fn default_publish_path() -> String {
    "/publish".into()
}
fn default_secret_env() -> String {
    "KAVRO_PUBLISH_SECRET".into()
}

/// A route's `realtime = { backend = "app" }`: the hub holds the route's
/// WebSocket connections and asks `backend` what each event means.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeRouteSection {
    pub backend: Spanned<String>,
    #[serde(default = "default_path_on_backend")]
    pub path_on_backend: String,
    /// Larger messages from a client close its connection with 1009.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

fn default_path_on_backend() -> String {
    "/v1/realtime".into()
}
fn default_max_message_bytes() -> usize {
    64 * 1024
}

/// Timeouts towards an upstream; what is not set here comes from the
/// level above (route, then upstream, then `[timeouts]`).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    pub connect_ms: Option<u64>,
    pub read_ms: Option<u64>,
    pub write_ms: Option<u64>,
    pub total_ms: Option<u64>,
}

/// The response cache, shared by every route that has a `cache` table.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// Bytes the cache may hold in all (bodies, heads and keys).
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
    /// Largest body stored; larger responses pass through uncached.
    #[serde(default = "default_cache_object")]
    pub max_object_bytes: usize,
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection {
            max_bytes: default_cache_bytes(),
            max_object_bytes: default_cache_object(),
        }
    }
}

/// A duration: whole seconds, or text such as "500ms", "10s", "5m".
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(u64),
    Text(String),
}

/// A duration that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a duration: {source}")]
pub struct DurationError {
    text: String,
    source: humantime::DurationError,
}

impl DurationValue {
    pub fn parse(&self) -> Result<std::time::Duration, DurationError> {
        match self {
            DurationValue::Seconds(s) => Ok(std::time::Duration::from_secs(*s)),
            DurationValue::Text(t) => {
                humantime::parse_duration(t).map_err(|source| DurationError {
                    text: t.clone(),
                    source,
                })
            }
        }
    }
}

/// A route's cache settings.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheSection {
    /// Lifetime of a stored response when the origin does not give one.
    #[serde(default = "default_ttl")]
    pub ttl: Spanned<DurationValue>,
    /// Statuses that may be stored.
    #[serde(default = "default_cache_statuses")]
    pub statuses: Vec<u16>,
    /// Make the query string part of the key.
    #[serde(default = "yes")]
    pub query: bool,
    /// Take the lifetime from the origin's Cache-Control and Expires.
    #[serde(default = "yes")]
    pub origin_headers: bool,
    /// Store responses that carry Set-Cookie.
    #[serde(default)]
    pub set_cookie: bool,
    /// Past freshness: how long a stale response is served while one
    /// background request refreshes it, unless the origin says.
    pub stale_while_revalidate: Option<Spanned<DurationValue>>,
    /// Past freshness: how long a stale response is served when the
    /// origin fails, unless the origin says.
    pub stale_if_error: Option<Spanned<DurationValue>>,
    /// Past freshness: how long a response with a validator is kept to be
    /// revalidated.
    pub keep: Option<Spanned<DurationValue>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FastCgiSection {
    /// "unix:/run/php/php-fpm.sock", "/path/to.sock" or "host:port".
    pub address: Spanned<String>,
    /// The document root: SCRIPT_FILENAME is resolved under it.
    pub root: Spanned<String>,
    /// The same folder as the FastCGI server sees it (a php-fpm in a
    /// container): SCRIPT_FILENAME and DOCUMENT_ROOT are written with it.
    pub script_root: Option<Spanned<String>>,
    #[serde(default = "default_php_index")]
    pub index: Vec<String>,
    #[serde(default = "default_php_extension")]
    pub extension: String,
    /// Split `/script.php/more` into the script and PATH_INFO.
    #[serde(default = "yes")]
    pub split_path_info: bool,
    /// Script for paths that name no script, e.g. "/index.php".
    pub front_controller: Option<String>,
    /// 404 for a missing script without asking the FastCGI server.
    #[serde(default = "yes")]
    pub check_exists: bool,
    #[serde(default = "default_fastcgi_timeout")]
    pub timeout_ms: u64,
    /// Open connections at most; keep it at or below php-fpm's pm.max_children.
    #[serde(default = "default_fastcgi_connections")]
    pub max_connections: usize,
    /// Kept-alive connections unused this long are closed, freeing their
    /// php-fpm workers.
    #[serde(default = "default_fastcgi_idle")]
    pub idle_timeout_ms: u64,
    /// Requests that may wait for a connection while all are in use; beyond, 503.
    #[serde(default = "default_fastcgi_queue")]
    pub max_queue: u32,
    /// How long a request may wait for a connection before a 503.
    #[serde(default = "default_fastcgi_queue_timeout")]
    pub queue_timeout_ms: u64,
    #[serde(default = "default_fastcgi_request")]
    pub max_request_bytes: usize,
    #[serde(default = "default_fastcgi_response")]
    pub max_response_bytes: usize,
    /// Extra params sent with every request.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "default_listen")]
    pub listen: Vec<Spanned<ListenEntry>>,
    /// Worker threads; 0 means one per core.
    #[serde(default)]
    pub threads: usize,
    /// Let idle worker threads steal tasks from busy ones. Off by default:
    /// on small machines the cross-thread wake-ups cost more than they save.
    #[serde(default)]
    pub work_stealing: bool,
    /// Largest response body the present chain buffers; larger bodies stream untouched.
    #[serde(default = "default_present_max")]
    pub present_max_bytes: usize,
    /// Accept HTTP/2 over cleartext (prior knowledge) beside HTTP/1.1.
    #[serde(default = "yes")]
    pub h2c: bool,
    /// How long SIGTERM waits for requests under way before exiting anyway.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_s: u64,
    /// Post chains running at once; none: 8 per worker thread. A completion
    /// beyond them waits, and so does its connection's next request,
    /// instead of piling up instances.
    #[serde(default)]
    pub post_concurrency: Option<usize>,
    /// Finished requests one post call carries at the most, for plugins
    /// that export post alone; 1 hands each over alone.
    #[serde(default = "default_post_batch")]
    pub post_batch: usize,
    /// A longer request line is answered 414.
    #[serde(default = "default_max_request_line")]
    pub max_request_line_bytes: usize,
    /// Larger request headers, all together, are answered 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// More request header fields are answered 431.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// A request head must arrive within it: 408, and the connection closed.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// The longest wait for the next part of a request body: 408.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// An upgraded connection (WebSocket) idle on one side this long is closed.
    #[serde(default = "default_websocket_idle_timeout")]
    pub websocket_idle_timeout_ms: u64,
    /// An idle kept-alive connection is closed after it; 0 turns keep-alive off.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout_s: u64,
    /// An HTTP/1 connection is closed after this many requests.
    #[serde(default = "default_max_requests_per_connection")]
    pub max_requests_per_connection: u32,
    /// Open connections one client address may hold; none: no limit.
    #[serde(default)]
    pub max_connections_per_ip: Option<u32>,
    /// Larger request bodies get 413, on every route that sets none itself.
    #[serde(default)]
    pub max_request_bytes: Option<u64>,
    /// Peers (CIDRs or addresses) whose X-Forwarded-For names the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// How long a reloaded set is watched; 0: not watched.
    #[serde(default = "default_reload_verify")]
    pub reload_verify_s: u64,
    /// "text" or "json": one JSON object per log line (read at start).
    #[serde(default)]
    pub log_format: LogFormat,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_reload_verify() -> u64 {
    10
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            threads: 0,
            work_stealing: false,
            present_max_bytes: default_present_max(),
            h2c: true,
            shutdown_grace_s: default_shutdown_grace(),
            post_concurrency: None,
            post_batch: default_post_batch(),
            max_request_line_bytes: default_max_request_line(),
            max_header_bytes: default_max_header_bytes(),
            max_headers: default_max_headers(),
            header_timeout_ms: default_header_timeout(),
            body_timeout_ms: default_body_timeout(),
            websocket_idle_timeout_ms: default_websocket_idle_timeout(),
            keepalive_timeout_s: default_keepalive_timeout(),
            max_requests_per_connection: default_max_requests_per_connection(),
            max_connections_per_ip: None,
            max_request_bytes: None,
            trusted_proxies: Vec::new(),
            reload_verify_s: default_reload_verify(),
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Where the admin API listens; none disables it.
    pub listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// `host:port`, or `https://host[:port]` for a target reached over TLS;
    /// or `{ target = "...", weight = N }`.
    pub targets: Vec<Spanned<TargetEntry>>,
    /// How a request's target is chosen: "round_robin", "least_inflight"
    /// or "hash" (with `hash_on`).
    pub balance: Option<Spanned<String>>,
    /// What "hash" hashes: "client_ip", "header:NAME" or "cookie:NAME".
    pub hash_on: Option<Spanned<String>>,
    /// Requests sent to the upstream at once; the rest queue.
    pub max_inflight: Option<Spanned<u32>>,
    /// Requests that may wait for a slot; beyond, 503.
    pub max_queue: Option<Spanned<u32>>,
    /// How long a request may wait for a slot before a 503.
    pub queue_timeout_ms: Option<u64>,
    /// Active health checks.
    pub check: Option<CheckSection>,
    /// The Host header sent: "client", "target", or `{ fixed = "name" }`.
    pub host_header: Option<Spanned<HostHeaderEntry>>,
    /// When a failed attempt is made again.
    #[serde(default)]
    pub retries: RetrySection,
    /// Connect to every target over TLS.
    #[serde(default)]
    pub tls: bool,
    /// The name sent (SNI) and verified; by default the target's host.
    pub sni: Option<String>,
    /// Roots the upstream's certificate must chain to; the system's by default.
    pub ca: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub verify: bool,
    pub client_cert: Option<Spanned<String>>,
    pub client_key: Option<Spanned<String>>,
    pub connect_timeout_ms: Option<u64>,
    pub read_timeout_ms: Option<u64>,
    pub write_timeout_ms: Option<u64>,
    pub total_timeout_ms: Option<u64>,
    /// Passive health: when a target is taken out of rotation.
    #[serde(default)]
    pub eject: EjectSection,
}

/// One target: its address alone, or with a weight.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TargetEntry {
    Address(String),
    Weighted {
        target: String,
        #[serde(default = "one")]
        weight: u32,
    },
}

impl TargetEntry {
    pub fn address(&self) -> &str {
        match self {
            TargetEntry::Address(a) | TargetEntry::Weighted { target: a, .. } => a,
        }
    }

    pub fn weight(&self) -> u32 {
        match self {
            TargetEntry::Address(_) => 1,
            TargetEntry::Weighted { weight, .. } => *weight,
        }
    }
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum HostHeaderEntry {
    Keyword(String),
    Fixed { fixed: String },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySection {
    /// Attempts a request may make in all, the first included.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Retries under way at once, as a percentage of the requests under
    /// way on the upstream (at least 3 are always allowed).
    #[serde(default = "default_budget_percent")]
    pub budget_percent: u32,
    /// Idempotent requests are also retried after a read error or timeout
    /// on a new connection (before any of the answer was sent).
    #[serde(default)]
    pub reads: bool,
}

impl Default for RetrySection {
    fn default() -> Self {
        RetrySection {
            attempts: default_attempts(),
            budget_percent: default_budget_percent(),
            reads: false,
        }
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_budget_percent() -> u32 {
    20
}

/// A request the host sends to each target on its own, to learn whether
/// it is up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSection {
    pub path: Spanned<String>,
    #[serde(default = "default_check_interval")]
    pub interval_ms: u64,
    #[serde(default = "default_check_timeout")]
    pub timeout_ms: u64,
    /// The status a healthy target answers; any 2xx when absent.
    pub status: Option<u16>,
    /// Failed checks in a row that take a target down.
    #[serde(default = "default_check_fall")]
    pub fall: u32,
    /// Passed checks in a row that bring it back.
    #[serde(default = "default_check_rise")]
    pub rise: u32,
}

fn default_check_interval() -> u64 {
    5_000
}
fn default_check_timeout() -> u64 {
    2_000
}
fn default_check_fall() -> u32 {
    3
}
fn default_check_rise() -> u32 {
    2
}

/// A target that keeps failing is ejected for a period that doubles while
/// it goes on failing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EjectSection {
    /// Consecutive failures that eject a target; 0 never ejects.
    #[serde(default = "default_eject_failures")]
    pub failures: u32,
    /// A 5xx answer counts as a failure, as a refused connection does.
    #[serde(default)]
    pub on_5xx: bool,
    /// The first ejection's length.
    #[serde(default = "default_eject_ms")]
    pub base_ms: u64,
    /// The longest an ejection grows to.
    #[serde(default = "default_eject_max_ms")]
    pub max_ms: u64,
}

impl Default for EjectSection {
    fn default() -> Self {
        EjectSection {
            failures: default_eject_failures(),
            on_5xx: false,
            base_ms: default_eject_ms(),
            max_ms: default_eject_max_ms(),
        }
    }
}

fn default_eject_failures() -> u32 {
    3
}
fn default_eject_ms() -> u64 {
    10_000
}
fn default_eject_max_ms() -> u64 {
    300_000
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub name: Option<String>,
    /// "example.com", "*.example.com" or absent for any host.
    pub host: Option<Spanned<String>>,
    /// "/exact", "/prefix/*" or "/*" (the default).
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    /// Lower runs first among equally specific routes.
    #[serde(default)]
    pub priority: i32,
    pub proxy: Option<Spanned<String>>,
    #[serde(rename = "static")]
    pub static_files: Option<StaticSection>,
    pub respond: Option<RespondSection>,
    pub redirect: Option<RedirectSection>,
    pub fastcgi: Option<FastCgiSection>,
    /// WebSocket clients held by the realtime hub.
    pub realtime: Option<RealtimeRouteSection>,
    /// Cache this route's responses.
    pub cache: Option<RouteCacheSection>,
    /// Timeouts towards the upstream this route's requests go to.
    pub timeouts: Option<TimeoutsSection>,
    /// Retries of this route's requests, over the upstream's.
    pub retries: Option<RouteRetrySection>,
    /// Larger request bodies get 413; over `[server] max_request_bytes`.
    pub max_request_bytes: Option<u64>,
    /// `false`: this route's responses are never compressed by Kavro.
    #[serde(default = "yes")]
    pub compress: bool,
    /// The Cache-Control its responses get towards clients when they have
    /// none (Kvarn's client cache preference).
    pub client_cache: Option<Spanned<toml::Value>>,
}

/// `[[servers]]`: listeners with routes of their own, for some host names.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// IP address and port of each listener ("0.0.0.0:8081").
    pub listen: Vec<Spanned<String>>,
    /// Host names it answers for (patterns as a route's `host`); none: any.
    #[serde(default)]
    pub hostnames: Vec<Spanned<String>>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
}

/// What a route may change of its upstream's retries; the budget stays
/// the upstream's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRetrySection {
    pub attempts: Option<u32>,
    pub reads: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSection {
    pub root: Spanned<String>,
    #[serde(default = "default_index")]
    pub index: Vec<String>,
    /// A leading part of the path removed before looking up the file.
    pub strip_prefix: Option<String>,
    /// Serve a file's `.br` / `.zst` / `.gz` sibling to clients that
    /// accept it.
    #[serde(default)]
    pub precompressed: bool,
    /// Run the `!>` directives of files' first lines (`false` for a root
    /// of files others upload, which must not choose plugins).
    #[serde(default = "yes")]
    pub directives: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RespondSection {
    #[serde(default = "default_status")]
    pub status: Spanned<u16>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectSection {
    /// Target; `{path}`, `{uri}` and `{host}` are replaced from the request.
    pub to: String,
    #[serde(default = "default_redirect_status")]
    pub status: Spanned<u16>,
}

/// How one plugin is applied. Also the shape of a plugin's sidecar
/// `<name>.toml` in the plugins folder (without `name` and `file`).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    pub name: Option<Spanned<String>>,
    /// The component, relative to the plugins folder; default `<name>.wasm`.
    pub file: Option<String>,
    /// Lower runs first; ties keep file-name order.
    pub priority: Option<i32>,
    /// Route names this plugin applies to; absent means every route.
    pub routes: Option<Vec<Spanned<String>>>,
    /// Request paths it applies to (route path patterns), within its
    /// routes; absent means every path.
    pub paths: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub capabilities: Vec<Spanned<String>>,
    #[serde(default)]
    pub isolation: Isolation,
    #[serde(default)]
    pub failure: FailurePolicy,
    #[serde(default)]
    pub limits: LimitsSection,
    /// Values the plugin reads through the `config` import.
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
    /// Host environment variables the plugin may read (WASI), by name.
    #[serde(default)]
    pub env: Vec<Spanned<String>>,
    /// Directories the plugin may read (WASI): guest path = host path.
    #[serde(default)]
    pub dirs: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// A warm instance from a pool, kept for all of one request's phases.
    #[default]
    Pooled,
    /// A fresh instance for every request.
    Request,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// A failing plugin fails the request with a 500.
    #[default]
    FailClosed,
    /// A failing plugin is skipped.
    FailOpen,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub deadline_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub pool_size: Option<usize>,
    pub max_uses: Option<u64>,
    /// Linear-memory growth (MiB) after an instance's first request past
    /// which it is replaced between requests; 0 never.
    pub max_growth_mb: Option<u64>,
    /// Largest body the plugin's prepare or present may produce; default
    /// `server.present_max_bytes`.
    pub max_body_kb: Option<u64>,
    /// Most headers the plugin may add in one call.
    pub max_headers: Option<usize>,
    /// Most metric series (distinct names) the plugin may create.
    pub max_metric_series: Option<usize>,
    /// CPU time a phase call may use on a worker before it moves to the
    /// slow lane.
    pub worker_cpu_us: Option<u64>,
}

fn default_listen() -> Vec<Spanned<ListenEntry>> {
    vec![Spanned::new(
        0..0,
        ListenEntry::Address("127.0.0.1:8080".to_string()),
    )]
}
fn default_post_batch() -> usize {
    32
}

fn default_shutdown_grace() -> u64 {
    10
}

fn default_max_request_line() -> usize {
    crate::protect::HeadLimits::default().max_request_line_bytes
}

fn default_max_header_bytes() -> usize {
    crate::protect::HeadLimits::default().max_header_bytes
}

fn default_max_headers() -> usize {
    crate::protect::HeadLimits::default().max_headers
}

fn default_header_timeout() -> u64 {
    crate::protect::ClientLimits::default()
        .header_timeout
        .as_millis() as u64
}

fn default_body_timeout() -> u64 {
    crate::protect::ClientLimits::default()
        .body_timeout
        .as_millis() as u64
}

fn default_websocket_idle_timeout() -> u64 {
    crate::protect::ClientLimits::default()
        .websocket_idle_timeout
        .as_millis() as u64
}

fn default_keepalive_timeout() -> u64 {
    crate::protect::ClientLimits::default().keepalive_timeout_s
}

fn default_max_requests_per_connection() -> u32 {
    crate::protect::ClientLimits::default().max_requests_per_connection
}

fn default_present_max() -> usize {
    1 << 20
}
pub(super) fn default_connect_timeout() -> u64 {
    2_000
}
pub(super) fn default_read_timeout() -> u64 {
    30_000
}
fn default_index() -> Vec<String> {
    vec!["index.html".to_string()]
}
fn default_status() -> Spanned<u16> {
    Spanned::new(0..0, 200)
}
fn default_redirect_status() -> Spanned<u16> {
    Spanned::new(0..0, 302)
}
fn default_cache_bytes() -> u64 {
    64 << 20
}
fn default_cache_object() -> usize {
    8 << 20
}
fn default_ttl() -> Spanned<DurationValue> {
    Spanned::new(0..0, DurationValue::Seconds(60))
}
fn default_cache_statuses() -> Vec<u16> {
    vec![200]
}
fn default_php_index() -> Vec<String> {
    vec!["index.php".to_string()]
}
fn default_php_extension() -> String {
    ".php".to_string()
}
fn default_fastcgi_timeout() -> u64 {
    30_000
}
fn default_fastcgi_connections() -> usize {
    4
}
fn default_fastcgi_queue() -> u32 {
    1000
}
fn default_fastcgi_queue_timeout() -> u64 {
    5000
}
fn default_fastcgi_idle() -> u64 {
    2_000
}
fn default_fastcgi_request() -> usize {
    16 << 20
}
fn default_fastcgi_response() -> usize {
    64 << 20
}
fn yes() -> bool {
    true
}

/// A plain listener: its address, or a table for one that keeps serving
/// plain HTTP when TLS is configured.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ListenEntry {
    Address(String),
    Table(ListenTable),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenTable {
    pub address: String,
    /// Answer plain requests with a redirect to HTTPS (when TLS is on);
    /// plain listeners only. Unset: yes.
    pub redirect: Option<bool>,
    /// Every connection starts with a PROXY protocol header (v1 or v2),
    /// whose source address is the client's.
    #[serde(default)]
    pub proxy_protocol: bool,
}

impl ListenEntry {
    pub fn address(&self) -> &str {
        match self {
            ListenEntry::Address(a) => a,
            ListenEntry::Table(t) => &t.address,
        }
    }

    pub fn proxy_protocol(&self) -> bool {
        matches!(self, ListenEntry::Table(t) if t.proxy_protocol)
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub listen: Vec<Spanned<ListenEntry>>,
    #[serde(default = "yes")]
    pub redirect: bool,
    pub https_port: Option<u16>,
    pub hsts: Option<HstsSection>,
    #[serde(default)]
    pub unknown_name: UnknownName,
    #[serde(default)]
    pub certificates: Vec<CertificateSection>,
    pub acme: Option<AcmeSection>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HstsSection {
    pub max_age_s: u64,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

/// What a handshake for a name no certificate covers gets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownName {
    /// The first certificate.
    #[default]
    Default,
    /// No certificate: the handshake fails.
    Refuse,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateSection {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    pub names: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeSection {
    pub domains: Vec<Spanned<String>>,
    #[serde(default = "default_acme_directory")]
    pub directory: Spanned<String>,
    pub directory_ca: Option<Spanned<String>>,
    #[serde(default)]
    pub contact: Vec<String>,
    #[serde(default)]
    pub challenge: Challenge,
    #[serde(default = "default_acme_state")]
    pub state_dir: String,
    #[serde(default = "default_renew_before")]
    pub renew_before: Spanned<DurationValue>,
    #[serde(default = "default_check_every")]
    pub check_every: Spanned<DurationValue>,
}

/// How the CA checks that this host answers for a domain.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Challenge {
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

fn default_acme_directory() -> Spanned<String> {
    Spanned::new(
        0..0,
        "https://acme-v02.api.letsencrypt.org/directory".to_string(),
    )
}

fn default_acme_state() -> String {
    "acme".to_string()
}

fn default_renew_before() -> Spanned<DurationValue> {
    Spanned::new(0..0, DurationValue::Text("30days".to_string()))
}

fn default_check_every() -> Spanned<DurationValue> {
    Spanned::new(0..0, DurationValue::Text("12h".to_string()))
}
