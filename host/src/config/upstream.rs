//! `[upstreams.NAME]`: targets, how one is chosen, how many requests go at
//! once, how targets are checked and ejected, and the Host header sent.

use std::path::Path;
use std::time::Duration;

use http::HeaderName;
use toml::Spanned;

use super::model::{
    default_connect_timeout, default_read_timeout, HostHeaderEntry, RouteRetrySection,
    TimeoutsSection, UpstreamSection,
};
use super::{check_addr, tls, Reporter};

/// An upstream as declared: its targets are resolved when its balancer is
/// built.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// `host:port` pairs.
    pub targets: Vec<String>,
    /// Each target's weight, in the order of `targets`.
    pub weights: Vec<u32>,
    /// Where each target is written (line, column), for the errors of the
    /// step that resolves them.
    pub positions: Vec<(usize, usize)>,
    pub timeouts: Timeouts,
    pub tls: Option<tls::UpstreamTls>,
    pub eject: Eject,
    pub balance: Balance,
    pub admission: Option<Admission>,
    pub check: Option<Check>,
    pub host_header: HostHeader,
    pub retries: Retries,
}

/// When a failed attempt is made again: a refused connection always (on
/// another target), a failed read if `reads` (idempotent requests only),
/// within `attempts` per request and a budget of retries under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    pub attempts: u32,
    pub budget_percent: u32,
    pub reads: bool,
}

/// Timeouts towards an upstream's targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// Each read of the answer.
    pub read: Duration,
    /// Each write of the request; unset, a target that stops reading is
    /// caught by the read timeout of the answer that never comes.
    pub write: Option<Duration>,
    /// The request's whole time with the upstream, retries included.
    pub total: Option<Duration>,
}

/// A route's retries: what it sets replaces the upstream's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOverrides {
    pub attempts: Option<u32>,
    pub reads: Option<bool>,
}

impl Retries {
    /// These retries with a route's overrides applied.
    pub fn with(self, route: Option<&RetryOverrides>) -> Retries {
        let Some(r) = route else { return self };
        Retries {
            attempts: r.attempts.unwrap_or(self.attempts),
            reads: r.reads.unwrap_or(self.reads),
            ..self
        }
    }
}

/// Checks a route's `retries`.
pub(super) fn route_retries(
    r: &mut Reporter<'_>,
    field: &str,
    s: &RouteRetrySection,
) -> RetryOverrides {
    if let Some(a) = s.attempts {
        check_attempts(r, field, a);
    }
    RetryOverrides {
        attempts: s.attempts,
        reads: s.reads,
    }
}

fn check_attempts(r: &mut Reporter<'_>, field: &str, attempts: u32) {
    if !(1..=MAX_ATTEMPTS).contains(&attempts) {
        r.error(
            None,
            format!("{field}.retries.attempts"),
            format!("{attempts} attempts is outside 1 to {MAX_ATTEMPTS}"),
            "count the first attempt too: 1 never retries, 3 is the default",
        );
    }
}

/// A route's timeouts: what it sets replaces the upstream's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeoutOverrides {
    pub connect: Option<Duration>,
    pub read: Option<Duration>,
    pub write: Option<Duration>,
    pub total: Option<Duration>,
}

impl Timeouts {
    /// These timeouts with a route's overrides applied.
    pub fn with(self, route: &TimeoutOverrides) -> Timeouts {
        Timeouts {
            connect: route.connect.unwrap_or(self.connect),
            read: route.read.unwrap_or(self.read),
            write: route.write.or(self.write),
            total: route.total.or(self.total),
        }
    }
}

fn ms(v: Option<u64>) -> Option<Duration> {
    v.map(Duration::from_millis)
}

impl TimeoutOverrides {
    pub(super) fn of(t: &TimeoutsSection) -> TimeoutOverrides {
        TimeoutOverrides {
            connect: ms(t.connect_ms),
            read: ms(t.read_ms),
            write: ms(t.write_ms),
            total: ms(t.total_ms),
        }
    }
}

/// Refuses zero timeouts: 0 ms would fail every request.
pub(super) fn check_timeouts(r: &mut Reporter<'_>, field: &str, t: &TimeoutsSection) {
    let all = [
        ("connect_ms", t.connect_ms),
        ("read_ms", t.read_ms),
        ("write_ms", t.write_ms),
        ("total_ms", t.total_ms),
    ];
    for (key, v) in all {
        if v == Some(0) {
            r.error(
                None,
                format!("{field}.{key}"),
                "a timeout of 0 ms fails every request",
                "give a length in milliseconds, or leave it out to inherit it",
            );
        }
    }
}

/// When a failing target is taken out of rotation, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eject {
    /// Consecutive failures that eject a target; 0 never ejects.
    pub failures: u32,
    pub on_5xx: bool,
    pub base: Duration,
    pub max: Duration,
}

/// How a request's target is chosen among those in rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// In turn, each target as often as its weight says.
    RoundRobin,
    /// The target with the fewest requests under way for its weight.
    LeastInflight,
    /// The same key goes to the same target while it is in rotation
    /// (consistent hashing); a request without the key goes round robin.
    Hash(HashKey),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    Header(HeaderName),
    Cookie(String),
}

/// At most `max_inflight` requests at once; up to `max_queue` more wait,
/// first come first served, for at most `queue_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub max_inflight: u32,
    pub max_queue: u32,
    pub queue_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// `None`: any 2xx.
    pub status: Option<u16>,
    pub fall: u32,
    pub rise: u32,
}

/// The Host header of the request sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HostHeader {
    /// The client's, as it came.
    #[default]
    Client,
    /// The target's own `host:port`, as written in the config.
    Target,
    Fixed(String),
}

const DEFAULT_MAX_QUEUE: u32 = 1000;
/// Pingora's own bound on the attempts of one request.
const MAX_ATTEMPTS: u32 = 16;
const DEFAULT_QUEUE_TIMEOUT_MS: u64 = 5000;

/// Checks one `[upstreams.NAME]` section; `None` when it has errors (reported).
pub(super) fn compile(
    r: &mut Reporter<'_>,
    name: &str,
    u: &UpstreamSection,
    defaults: &TimeoutsSection,
    base: &Path,
) -> Option<UpstreamSettings> {
    let field = format!("upstreams.{name}");
    if u.targets.is_empty() {
        r.error(
            None,
            format!("{field}.targets"),
            "an upstream needs at least one target",
            "add targets = [\"host:port\"]",
        );
        return None;
    }
    let errors = r.errors.len();
    let targets: Vec<(String, bool)> = u
        .targets
        .iter()
        .map(|t| tls::split_target(t.get_ref().address()))
        .collect();
    for (i, t) in u.targets.iter().enumerate() {
        let addr = Spanned::new(t.span(), targets[i].0.clone());
        check_addr(r, &addr, &format!("{field}.targets[{i}]"));
        if t.get_ref().weight() == 0 {
            r.error(
                Some(t.span()),
                format!("{field}.targets[{i}].weight"),
                "a weight of 0 sends the target nothing",
                "give it a weight of 1 or more, or remove the target",
            );
        }
    }
    if u.eject.failures > 0 && u.eject.base_ms == 0 {
        r.error(
            None,
            format!("{field}.eject.base_ms"),
            "an ejection of 0 ms takes nothing out of rotation",
            "give base_ms a length (default 10000), or set failures = 0 to never eject",
        );
    }
    if u.eject.max_ms < u.eject.base_ms {
        r.error(
            None,
            format!("{field}.eject.max_ms"),
            format!(
                "max_ms ({}) is shorter than base_ms ({})",
                u.eject.max_ms, u.eject.base_ms
            ),
            "an ejection grows from base_ms up to max_ms",
        );
    }
    check_attempts(r, &field, u.retries.attempts);
    if u.retries.budget_percent > 100 {
        r.error(
            None,
            format!("{field}.retries.budget_percent"),
            format!("{}% of the requests under way", u.retries.budget_percent),
            "a share from 0 to 100 of the requests under way (default 20)",
        );
    }
    let own = TimeoutsSection {
        connect_ms: u.connect_timeout_ms,
        read_ms: u.read_timeout_ms,
        write_ms: u.write_timeout_ms,
        total_ms: u.total_timeout_ms,
    };
    check_timeouts(r, &field, &own);
    let own = TimeoutOverrides::of(&own);
    let inherited = TimeoutOverrides::of(defaults);
    let timeouts = Timeouts {
        connect: own
            .connect
            .or(inherited.connect)
            .unwrap_or(Duration::from_millis(default_connect_timeout())),
        read: own
            .read
            .or(inherited.read)
            .unwrap_or(Duration::from_millis(default_read_timeout())),
        write: own.write.or(inherited.write),
        total: own.total.or(inherited.total),
    };
    let balance = balance(r, &field, u);
    let admission = admission(r, &field, u);
    let check = check(r, &field, u);
    let host_header = host_header(r, &field, u);
    let upstream_tls = tls::compile_upstream(r, &field, u, &targets, base);
    if r.errors.len() != errors {
        return None;
    }
    Some(UpstreamSettings {
        targets: targets.into_iter().map(|(t, _)| t).collect(),
        weights: u.targets.iter().map(|t| t.get_ref().weight()).collect(),
        positions: u.targets.iter().map(|t| r.position(t.span())).collect(),
        timeouts,
        tls: upstream_tls,
        eject: Eject {
            failures: u.eject.failures,
            on_5xx: u.eject.on_5xx,
            base: Duration::from_millis(u.eject.base_ms),
            max: Duration::from_millis(u.eject.max_ms),
        },
        balance: balance?,
        admission,
        check,
        host_header: host_header?,
        retries: Retries {
            attempts: u.retries.attempts,
            budget_percent: u.retries.budget_percent,
            reads: u.retries.reads,
        },
    })
}

fn balance(r: &mut Reporter<'_>, field: &str, u: &UpstreamSection) -> Option<Balance> {
    let key = match &u.hash_on {
        None => None,
        Some(h) => match hash_key(h.get_ref()) {
            Some(k) => Some(k),
            None => {
                r.error(
                    Some(h.span()),
                    format!("{field}.hash_on"),
                    format!("`{}` is not a hash key", h.get_ref()),
                    "write \"client_ip\", \"header:NAME\" or \"cookie:NAME\"",
                );
                return None;
            }
        },
    };
    let written = u.balance.as_ref().map(|b| (b.get_ref().as_str(), b.span()));
    match (written, key) {
        (None | Some(("round_robin", _)), None) => Some(Balance::RoundRobin),
        (Some(("least_inflight", _)), None) => Some(Balance::LeastInflight),
        (None | Some(("hash", _)), Some(key)) => Some(Balance::Hash(key)),
        (Some(("hash", span)), None) => {
            r.error(
                Some(span),
                format!("{field}.balance"),
                "\"hash\" needs something to hash",
                "add hash_on = \"client_ip\", \"header:NAME\" or \"cookie:NAME\"",
            );
            None
        }
        (Some((b @ ("round_robin" | "least_inflight"), span)), Some(_)) => {
            r.error(
                Some(span),
                format!("{field}.hash_on"),
                format!("hash_on is for balance = \"hash\", not \"{b}\""),
                "remove hash_on, or set balance = \"hash\"",
            );
            None
        }
        (Some((other, span)), _) => {
            r.error(
                Some(span),
                format!("{field}.balance"),
                format!("`{other}` is not a way to balance"),
                "write \"round_robin\" (the default), \"least_inflight\" or \"hash\"",
            );
            None
        }
    }
}

fn hash_key(written: &str) -> Option<HashKey> {
    match written.split_once(':') {
        None if written == "client_ip" => Some(HashKey::ClientIp),
        Some(("header", name)) => HeaderName::from_bytes(name.trim().as_bytes())
            .ok()
            .map(HashKey::Header),
        Some(("cookie", name)) if !name.trim().is_empty() => {
            Some(HashKey::Cookie(name.trim().to_string()))
        }
        _ => None,
    }
}

fn admission(r: &mut Reporter<'_>, field: &str, u: &UpstreamSection) -> Option<Admission> {
    let Some(max_inflight) = &u.max_inflight else {
        if let Some(q) = &u.max_queue {
            r.error(
                Some(q.span()),
                format!("{field}.max_queue"),
                "a queue without max_inflight never fills",
                "set max_inflight, the requests sent at once; the queue holds those past it",
            );
        } else if u.queue_timeout_ms.is_some() {
            r.error(
                None,
                format!("{field}.queue_timeout_ms"),
                "a queue timeout without max_inflight has no queue to time",
                "set max_inflight, or remove queue_timeout_ms",
            );
        }
        return None;
    };
    if *max_inflight.get_ref() == 0 {
        r.error(
            Some(max_inflight.span()),
            format!("{field}.max_inflight"),
            "0 requests at once sends nothing",
            "give the number of requests the upstream can take at once, e.g. 100",
        );
        return None;
    }
    if u.queue_timeout_ms == Some(0) {
        r.error(
            None,
            format!("{field}.queue_timeout_ms"),
            "a wait of 0 ms turns away every request that queues",
            "give the longest wait in milliseconds (default 5000); max_queue = 0 sheds at once instead",
        );
        return None;
    }
    Some(Admission {
        max_inflight: *max_inflight.get_ref(),
        max_queue: u
            .max_queue
            .as_ref()
            .map_or(DEFAULT_MAX_QUEUE, |q| *q.get_ref()),
        queue_timeout: Duration::from_millis(
            u.queue_timeout_ms.unwrap_or(DEFAULT_QUEUE_TIMEOUT_MS),
        ),
    })
}

fn check(r: &mut Reporter<'_>, field: &str, u: &UpstreamSection) -> Option<Check> {
    let c = u.check.as_ref()?;
    let path = c.path.get_ref();
    let mut ok = true;
    if !path.starts_with('/') || http::uri::PathAndQuery::try_from(path.as_str()).is_err() {
        r.error(
            Some(c.path.span()),
            format!("{field}.check.path"),
            format!("`{path}` is not a path"),
            "write the path the check requests, starting with /, e.g. \"/ready\"",
        );
        ok = false;
    }
    for (key, value) in [("interval_ms", c.interval_ms), ("timeout_ms", c.timeout_ms)] {
        if value == 0 {
            r.error(
                None,
                format!("{field}.check.{key}"),
                format!("{key} = 0"),
                "give a length in milliseconds (defaults: interval 5000, timeout 2000)",
            );
            ok = false;
        }
    }
    for (key, value) in [("fall", c.fall), ("rise", c.rise)] {
        if value == 0 {
            r.error(
                None,
                format!("{field}.check.{key}"),
                format!("{key} = 0"),
                "count checks in a row, 1 or more (defaults: fall 3, rise 2)",
            );
            ok = false;
        }
    }
    if let Some(s) = c.status.filter(|s| !(100..=599).contains(s)) {
        r.error(
            None,
            format!("{field}.check.status"),
            format!("{s} is not an HTTP status"),
            "write the status a healthy target answers, e.g. 200; without it any 2xx passes",
        );
        ok = false;
    }
    ok.then(|| Check {
        path: path.clone(),
        interval: Duration::from_millis(c.interval_ms),
        timeout: Duration::from_millis(c.timeout_ms),
        status: c.status,
        fall: c.fall,
        rise: c.rise,
    })
}

fn host_header(r: &mut Reporter<'_>, field: &str, u: &UpstreamSection) -> Option<HostHeader> {
    let Some(h) = &u.host_header else {
        return Some(HostHeader::Client);
    };
    match h.get_ref() {
        HostHeaderEntry::Keyword(k) if k == "client" => Some(HostHeader::Client),
        HostHeaderEntry::Keyword(k) if k == "target" => Some(HostHeader::Target),
        HostHeaderEntry::Fixed { fixed } if http::HeaderValue::from_str(fixed).is_ok() => {
            Some(HostHeader::Fixed(fixed.clone()))
        }
        other => {
            r.error(
                Some(h.span()),
                format!("{field}.host_header"),
                format!("{other:?} is not a Host header choice"),
                "write \"client\" (the default), \"target\", or { fixed = \"api.example.com\" }",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn error_of(section: &str) -> String {
        let text = format!("[upstreams.a]\ntargets = [\"127.0.0.1:1\"]\n{section}\n");
        Config::parse("k.toml", &text).unwrap_err().to_string()
    }

    fn upstream(section: &str) -> super::UpstreamSettings {
        let text = format!("[upstreams.a]\n{section}\n");
        let c = Config::parse("k.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        c.upstreams["a"].clone()
    }

    #[test]
    fn targets_take_weights() {
        let u = upstream("targets = [\"127.0.0.1:1\", { target = \"127.0.0.1:2\", weight = 3 }]");
        assert_eq!(u.targets, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(u.weights, [1, 3]);
        let e = Config::parse(
            "k.toml",
            "[upstreams.a]\ntargets = [{ target = \"127.0.0.1:2\", weight = 0 }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("upstreams.a.targets[0].weight") && e.contains(":2:"),
            "{e}"
        );
    }

    #[test]
    fn balance_and_hash_keys() {
        use super::{Balance, HashKey};
        let u = upstream("targets = [\"127.0.0.1:1\"]\nbalance = \"least_inflight\"");
        assert_eq!(u.balance, Balance::LeastInflight);
        let u = upstream("targets = [\"127.0.0.1:1\"]\nhash_on = \"cookie:sid\"");
        assert_eq!(u.balance, Balance::Hash(HashKey::Cookie("sid".into())));
        let u = upstream(
            "targets = [\"127.0.0.1:1\"]\nbalance = \"hash\"\nhash_on = \"header:X-User\"",
        );
        assert_eq!(
            u.balance,
            Balance::Hash(HashKey::Header("x-user".parse().unwrap()))
        );
        for (section, expect) in [
            ("balance = \"hash\"", "needs something to hash"),
            ("balance = \"fastest\"", "is not a way to balance"),
            ("hash_on = \"ip\"", "is not a hash key"),
            (
                "balance = \"least_inflight\"\nhash_on = \"client_ip\"",
                "hash_on is for",
            ),
        ] {
            let e = error_of(section);
            assert!(e.contains(expect), "{section}: {e}");
        }
    }

    #[test]
    fn queue_needs_a_limit() {
        let u = upstream("targets = [\"127.0.0.1:1\"]\nmax_inflight = 8");
        let a = u.admission.unwrap();
        assert_eq!((a.max_inflight, a.max_queue), (8, 1000));
        let e = error_of("max_queue = 10");
        assert!(
            e.contains("upstreams.a.max_queue") && e.contains("max_inflight"),
            "{e}"
        );
        assert!(error_of("max_inflight = 0").contains("0 requests at once"));
    }

    #[test]
    fn checks_need_a_path() {
        let u = upstream("targets = [\"127.0.0.1:1\"]\ncheck = { path = \"/ready\" }");
        let c = u.check.unwrap();
        assert_eq!((c.fall, c.rise, c.status), (3, 2, None));
        let e = error_of("check = { path = \"ready\" }");
        assert!(
            e.contains("upstreams.a.check.path") && e.contains("starting with /"),
            "{e}"
        );
        assert!(error_of("check = { path = \"/r\", fall = 0 }").contains("check.fall"));
    }

    #[test]
    fn timeouts_inherit_from_the_defaults_then_the_upstream_then_the_route() {
        use std::time::Duration;
        let text = "[timeouts]\nconnect_ms = 500\ntotal_ms = 9000\n\
                    [upstreams.a]\ntargets = [\"127.0.0.1:1\"]\nread_timeout_ms = 700\n\
                    [upstreams.b]\ntargets = [\"127.0.0.1:2\"]\nconnect_timeout_ms = 100\n\
                    [[routes]]\nproxy = \"a\"\ntimeouts = { read_ms = 50 }\n";
        let c = Config::parse("k.toml", text).unwrap();
        let a = c.upstreams["a"].timeouts;
        let ms = Duration::from_millis;
        assert_eq!(
            (a.connect, a.read, a.write, a.total),
            (ms(500), ms(700), None, Some(ms(9000)))
        );
        assert_eq!(c.upstreams["b"].timeouts.connect, ms(100));
        assert_eq!(c.upstreams["b"].timeouts.read, ms(30_000));
        let route = c.routes[0].timeouts.unwrap();
        assert_eq!(a.with(&route).read, ms(50));
        assert_eq!(a.with(&route).connect, ms(500));
        assert!(error_of("write_timeout_ms = 0").contains("upstreams.a.write_ms"));
    }

    #[test]
    fn host_header_choices() {
        use super::HostHeader;
        let u = upstream("targets = [\"127.0.0.1:1\"]\nhost_header = \"target\"");
        assert_eq!(u.host_header, HostHeader::Target);
        let u = upstream("targets = [\"127.0.0.1:1\"]\nhost_header = { fixed = \"api.example\" }");
        assert_eq!(u.host_header, HostHeader::Fixed("api.example".into()));
        assert!(error_of("host_header = \"server\"").contains("host_header"));
    }
}
