//! The native route table: host, path pattern and methods. Precedence: an
//! exact host beats a wildcard (which beats any host), a more specific path
//! beats a less specific one, then lower `priority`, then declaration order.

use std::borrow::Cow;
use std::sync::Arc;

use http::Method;

use crate::actions::fastcgi::FastCgi;
use crate::actions::respond::{Redirect, Respond};
use crate::actions::static_files::StaticRoot;
use crate::cache::RoutePolicy;
use crate::config::{RetryOverrides, TimeoutOverrides};
use crate::upstream::Upstream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    /// `example.com` (lower case, no port).
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
}

/// A route's `host` or `path` that is not a pattern Kavro knows.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("`{0}` is not a host name or *.wildcard")]
    Host(String),
    #[error("path `{0}` does not start with /")]
    NotAbsolute(String),
    #[error("`{0}` is not a pattern like /*.php or /dir/*.php")]
    Extension(String),
    #[error("`*` is only allowed as a final `/*` in `{0}`")]
    Wildcard(String),
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<HostPattern, PatternError> {
        let s = s.trim().to_ascii_lowercase();
        // A fully qualified name (`example.com.`) is the name requests are
        // matched by without its dot (see `normalize_host`).
        let s = match s.strip_suffix('.') {
            Some(name) if !name.is_empty() && !name.ends_with('.') && name != "*" => {
                name.to_string()
            }
            _ => s,
        };
        if s.is_empty() || s == "*" {
            return Ok(HostPattern::Any);
        }
        let (pattern, name) = match s.strip_prefix("*.") {
            Some(rest) => (HostPattern::Suffix(format!(".{rest}")), rest.to_string()),
            None => (HostPattern::Exact(s.clone()), s.clone()),
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if valid {
            Ok(pattern)
        } else {
            Err(PatternError::Host(s))
        }
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            HostPattern::Exact(_) => 0,
            HostPattern::Suffix(_) => 1,
            HostPattern::Any => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Exact(String),
    /// `/api/*` is stored as `/api/` and matches `/api` too.
    Prefix(String),
    /// `/blog/*.php`: paths under the prefix ending in the extension, or
    /// with it followed by `/` (`/blog/a.php/more`, for PATH_INFO).
    Extension {
        prefix: String,
        ext: String,
    },
}

/// A request path as the actions read it: percent-decoded, with `//`, `.`
/// and `..` worked out, so that `/%61dmin/x` and `//admin/./x` are
/// `/admin/x`. What plugins' `paths` are matched against.
pub fn plain_path(path: &str) -> std::borrow::Cow<'_, str> {
    let simple = !path.contains('%') && !path.contains("//") && !path.contains("/.");
    if simple {
        return std::borrow::Cow::Borrowed(path);
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut parts: Vec<&str> = Vec::new();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() || decoded.ends_with('/') {
        out.push('/');
    }
    std::borrow::Cow::Owned(out)
}

impl PathPattern {
    pub fn parse(s: &str) -> Result<PathPattern, PatternError> {
        if !s.starts_with('/') {
            return Err(PatternError::NotAbsolute(s.to_string()));
        }
        if let Some((prefix, ext)) = s.rsplit_once("/*.") {
            let valid = !ext.is_empty() && !ext.contains(['*', '/']) && !prefix.contains('*');
            if !valid {
                return Err(PatternError::Extension(s.to_string()));
            }
            return Ok(PathPattern::Extension {
                prefix: format!("{prefix}/"),
                ext: format!(".{ext}"),
            });
        }
        match s.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('/') => Ok(PathPattern::Prefix(prefix.to_string())),
            Some(_) => Err(PatternError::Wildcard(s.to_string())),
            None if s.contains('*') => Err(PatternError::Wildcard(s.to_string())),
            None => Ok(PathPattern::Exact(s.to_string())),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => p == path,
            PathPattern::Prefix(p) => {
                path.starts_with(p.as_str()) || path == &p[..p.len().saturating_sub(1)]
            }
            PathPattern::Extension { prefix, ext } => {
                path.starts_with(prefix.as_str())
                    && path.match_indices(ext.as_str()).any(|(i, _)| {
                        let rest = &path[i + ext.len()..];
                        rest.is_empty() || rest.starts_with('/')
                    })
            }
        }
    }

    /// Higher is more specific: exact paths beat extension patterns, which
    /// beat prefixes; longer beats shorter.
    fn specificity(&self) -> (u8, usize) {
        match self {
            PathPattern::Exact(p) => (2, p.len()),
            PathPattern::Extension { prefix, .. } => (1, prefix.len()),
            PathPattern::Prefix(p) => (0, p.len()),
        }
    }
}

#[derive(Debug, Clone)]
pub enum RouteAction {
    /// No built-in action: only the route's prepare plugins answer; 404 otherwise.
    None,
    Proxy(Arc<Upstream>),
    Static(Arc<StaticRoot>),
    Respond(Arc<Respond>),
    Redirect(Arc<Redirect>),
    FastCgi(Arc<FastCgi>),
    /// WebSocket clients held by the realtime hub.
    Realtime(Arc<crate::realtime::RealtimeRoute>),
}

/// A route; `A` is its action: as configured ([`crate::config::ActionSpec`])
/// or built ([`RouteAction`]).
#[derive(Debug)]
pub struct Route<A = RouteAction> {
    pub name: String,
    /// Position in the config file; plugin scopes refer to it.
    pub index: usize,
    pub host: HostPattern,
    pub path: PathPattern,
    /// Empty allows every method.
    pub methods: Vec<Method>,
    pub priority: i32,
    pub action: A,
    /// Cache settings; `None`: the route is not cached.
    pub cache: Option<Arc<RoutePolicy>>,
    /// Timeouts towards the upstream, where the route sets its own.
    pub timeouts: Option<TimeoutOverrides>,
    /// Retries, where the route sets its own.
    pub retries: Option<RetryOverrides>,
    /// Larger request bodies get 413 (the route's limit, or the server's).
    pub max_request_bytes: Option<u64>,
    /// Kavro may compress this route's responses.
    pub compress: bool,
    /// The Cache-Control its responses get towards clients when they have
    /// none (`client_cache`).
    pub client_cache: Option<http::HeaderValue>,
    /// The `[[servers]]` entry it belongs to; `None`: a top-level route.
    pub server: Option<u8>,
}

impl<A> Route<A> {
    /// The same route with another action (a configured one, built).
    pub fn with_action<B>(&self, action: B) -> Route<B> {
        Route {
            name: self.name.clone(),
            index: self.index,
            host: self.host.clone(),
            path: self.path.clone(),
            methods: self.methods.clone(),
            priority: self.priority,
            action,
            cache: self.cache.clone(),
            timeouts: self.timeouts,
            retries: self.retries,
            max_request_bytes: self.max_request_bytes,
            compress: self.compress,
            client_cache: self.client_cache.clone(),
            server: self.server,
        }
    }
}

#[derive(Debug)]
pub enum Match<'a> {
    Found(&'a Route),
    /// A route matched host and path but not the method.
    MethodNotAllowed,
    NotFound,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// Sorted by precedence, so the first match wins.
    routes: Vec<Route>,
    /// The `[[servers]]` entries, by index.
    servers: Vec<ServerScope>,
}

/// Where a `[[servers]]` entry answers.
#[derive(Debug, Clone)]
pub struct ServerScope {
    pub listeners: Vec<std::net::SocketAddr>,
    /// None: any host.
    pub hostnames: Vec<HostPattern>,
}

impl ServerScope {
    /// Whether a connection accepted on `local` came in on one of its
    /// listeners (one on 0.0.0.0 or [::] takes its port on any address).
    fn listens_on(&self, local: std::net::SocketAddr) -> bool {
        let local_ip = match local.ip() {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
            ip => ip,
        };
        self.listeners.iter().any(|l| {
            let same_family = l.is_ipv4() == local_ip.is_ipv4();
            l.port() == local.port()
                && same_family
                && (l.ip() == local_ip || l.ip().is_unspecified())
        })
    }
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        routes.sort_by(|a, b| {
            a.host
                .rank()
                .cmp(&b.host.rank())
                .then_with(|| b.path.specificity().cmp(&a.path.specificity()))
                .then_with(|| a.priority.cmp(&b.priority))
                .then_with(|| a.index.cmp(&b.index))
        });
        RouteTable {
            routes,
            servers: Vec::new(),
        }
    }

    /// The same table with its `[[servers]]` entries.
    pub fn with_servers(mut self, servers: Vec<ServerScope>) -> RouteTable {
        self.servers = servers;
        self
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// `host` is lower case without a port.
    pub fn find(&self, host: &str, path: &str, method: &Method) -> Match<'_> {
        self.find_on(None, host, path, method)
    }

    /// [`RouteTable::find`] for a connection accepted on `local`: a
    /// listener of `[[servers]]` entries has their routes, for their host
    /// names; any other has the top-level routes.
    pub fn find_on(
        &self,
        local: Option<std::net::SocketAddr>,
        host: &str,
        path: &str,
        method: &Method,
    ) -> Match<'_> {
        let claimed: u64 = match local {
            Some(local) if !self.servers.is_empty() => self
                .servers
                .iter()
                .enumerate()
                .filter(|(_, s)| s.listens_on(local))
                .fold(0, |mask, (i, _)| mask | 1 << i),
            _ => 0,
        };
        let in_scope = |r: &Route| match r.server {
            None => claimed == 0,
            Some(i) => {
                let s = &self.servers[i as usize];
                claimed & (1 << i) != 0
                    && (s.hostnames.is_empty() || s.hostnames.iter().any(|h| h.matches(host)))
            }
        };
        let mut wrong_method = false;
        for r in &self.routes {
            if in_scope(r) && r.host.matches(host) && r.path.matches(path) {
                if r.methods.is_empty() || r.methods.contains(method) {
                    return Match::Found(r);
                }
                wrong_method = true;
            }
        }
        if wrong_method {
            Match::MethodNotAllowed
        } else {
            Match::NotFound
        }
    }
}

/// The request's host, lower case, without port; borrowed unless it had
/// to be lower-cased.
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let h = if raw.starts_with('[') {
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    let h = h.trim_end_matches('.');
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    }
}

#[cfg(test)]
mod tests {
    use super::plain_path;

    #[test]
    fn plain_paths_are_decoded_with_dot_segments_worked_out() {
        assert_eq!(plain_path("/page.html"), "/page.html");
        assert_eq!(plain_path("/%61dmin/x"), "/admin/x");
        assert_eq!(plain_path("//admin/./x"), "/admin/x");
        assert_eq!(plain_path("/a/../admin/"), "/admin/");
        assert_eq!(plain_path("/.."), "/");
        assert_eq!(plain_path("/"), "/");
    }

    use super::*;

    fn route(name: &str, host: &str, path: &str, priority: i32, index: usize) -> Route {
        Route {
            name: name.into(),
            index,
            host: HostPattern::parse(host).unwrap(),
            path: PathPattern::parse(path).unwrap(),
            methods: vec![],
            priority,
            action: RouteAction::None,
            cache: None,
            timeouts: None,
            retries: None,
            max_request_bytes: None,
            compress: true,
            client_cache: None,
            server: None,
        }
    }

    fn found<'a>(t: &'a RouteTable, host: &str, path: &str) -> &'a str {
        match t.find(host, path, &Method::GET) {
            Match::Found(r) => &r.name,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn precedence() {
        let t = RouteTable::new(vec![
            route("any", "", "/*", 0, 0),
            route("wild", "*.example.com", "/*", 0, 1),
            route("exact", "www.example.com", "/*", 0, 2),
            route("api", "", "/api/*", 0, 3),
            route("api-v1", "", "/api/v1/*", 0, 4),
            route("about", "", "/about", 0, 5),
            route("low", "", "/p/*", 5, 6),
            route("high", "", "/p/*", 1, 7),
            route("first", "", "/q/*", 0, 8),
            route("second", "", "/q/*", 0, 9),
            route("php", "", "/*.php", 0, 10),
        ]);
        assert_eq!(found(&t, "other", "/x.php"), "php");
        assert_eq!(found(&t, "other", "/x.php/info"), "php");
        assert_eq!(found(&t, "other", "/x.phpx"), "any");
        assert_eq!(found(&t, "other", "/about"), "about");
        assert_eq!(found(&t, "www.example.com", "/x"), "exact");
        assert_eq!(found(&t, "a.example.com", "/x"), "wild");
        assert_eq!(found(&t, "example.com", "/x"), "any");
        assert_eq!(found(&t, "other", "/api/v1/x"), "api-v1");
        assert_eq!(found(&t, "other", "/api/x"), "api");
        assert_eq!(found(&t, "other", "/api"), "api");
        assert_eq!(found(&t, "other", "/about"), "about");
        assert_eq!(found(&t, "other", "/about/x"), "any");
        assert_eq!(found(&t, "other", "/p/1"), "high");
        assert_eq!(found(&t, "other", "/q/1"), "first");
    }

    #[test]
    fn methods_and_405() {
        let mut r = route("post-only", "", "/form", 0, 0);
        r.methods = vec![Method::POST];
        let t = RouteTable::new(vec![r]);
        assert!(matches!(
            t.find("h", "/form", &Method::POST),
            Match::Found(_)
        ));
        assert!(matches!(
            t.find("h", "/form", &Method::GET),
            Match::MethodNotAllowed
        ));
        assert!(matches!(t.find("h", "/x", &Method::GET), Match::NotFound));
    }

    #[test]
    fn host_normalization() {
        assert_eq!(normalize_host("Example.COM:8080"), "example.com");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("example.com."), "example.com");
        // A route written fully qualified matches what requests carry.
        let exact = HostPattern::parse("Example.com.").unwrap();
        assert!(exact.matches(&normalize_host("example.com")));
        assert!(exact.matches(&normalize_host("EXAMPLE.com.:443")));
        let wildcard = HostPattern::parse("*.example.com.").unwrap();
        assert!(wildcard.matches(&normalize_host("a.example.com.")));
    }

    #[test]
    fn bad_patterns() {
        assert!(PathPattern::parse("api").is_err());
        assert!(PathPattern::parse("/a*b").is_err());
        assert!(PathPattern::parse("/*/*.php").is_err());
        assert!(PathPattern::parse("/*.").is_err());
        assert!(HostPattern::parse("bad host").is_err());
        assert!(HostPattern::parse("*.").is_err(), "not a catch-all");
    }
}
