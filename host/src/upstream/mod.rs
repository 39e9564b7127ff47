//! Upstreams: the targets a proxy route sends to, how one is chosen for a
//! request (round robin, least in flight or a hash, each by weight), which
//! are in rotation (`target`: passive ejection and active checks, `probe`),
//! and how many requests go at once (`admission`).

pub mod admission;
pub mod client;
pub mod probe;
pub mod target;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use pingora_load_balancing::discovery::Static;
use pingora_load_balancing::health_check::HttpHealthCheck;
use pingora_load_balancing::selection::{Consistent, RoundRobin};
use pingora_load_balancing::{Backend, Backends, LoadBalancer};

use crate::config::{
    Balance, Check, Eject, HashKey, HostHeader, Retries, RetryOverrides, TimeoutOverrides,
    Timeouts, UpstreamSettings,
};
use crate::tls::upstream::PeerTls;
use admission::{Counters, Gate, Retrying};
use target::Target;

pub struct Upstream {
    pub name: String,
    members: Vec<Member>,
    /// Round robin by weight: the `round_robin` choice, and the choice of
    /// a hashed upstream for a request without the key.
    rotation: LoadBalancer<RoundRobin>,
    /// Set for `balance = "hash"`.
    ring: Option<(LoadBalancer<Consistent>, HashKey)>,
    least_inflight: bool,
    pub timeouts: Timeouts,
    tls: Option<PeerTls>,
    pub eject: Eject,
    pub check: Option<Check>,
    host_header: HostHeader,
    pub retries: Retries,
    /// `max_inflight` and its queue, when set.
    pub gate: Option<Arc<Gate>>,
    pub counters: Arc<Counters>,
}

/// Ring points the hash walks from a key's before scanning the members.
const RING_WALK: usize = 256;

/// One resolved address of a target.
struct Member {
    addr: SocketAddr,
    weight: usize,
    /// The target as written, without a default port: the Host header of
    /// `host_header = "target"` and the default SNI.
    authority: String,
    target: Arc<Target>,
    /// The active check of this address, when the upstream has checks.
    probe: Option<HttpHealthCheck>,
}

/// A target chosen for a request: where to connect, whose health its
/// outcome counts for, and the Host header to send when the upstream sets it.
pub struct Chosen {
    pub peer: Box<HttpPeer>,
    pub target: Arc<Target>,
    pub host: Option<HeaderValue>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("targets", &self.members.len())
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

fn balancer<S>(backends: &std::collections::BTreeSet<Backend>) -> LoadBalancer<S>
where
    S: pingora_load_balancing::selection::BackendSelection + 'static,
    S::Iter: pingora_load_balancing::selection::BackendIter,
{
    let lb = LoadBalancer::from_backends(Backends::new(Static::new(backends.clone())));
    // Static discovery completes in its first poll and cannot fail.
    {
        let mut update = std::pin::pin!(lb.update());
        let polled = update
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
        debug_assert!(polled.is_ready());
    }
    lb
}

/// Sets a peer's connect, read and write timeouts.
pub fn apply_timeouts(t: &Timeouts, peer: &mut HttpPeer) {
    peer.options.connection_timeout = Some(t.connect);
    peer.options.read_timeout = Some(t.read);
    // Unset by default: a timer per write costs, and a target that stops
    // reading is caught by the read timeout of the answer that never comes.
    peer.options.write_timeout = t.write;
}

/// `host:port` without the scheme's default port.
fn authority(target: &str, tls: bool) -> String {
    let default = if tls { ":443" } else { ":80" };
    target.strip_suffix(default).unwrap_or(target).to_string()
}

impl Upstream {
    /// Builds the balancers over the targets' resolved addresses (each
    /// target with what it resolved to) and reads the TLS files.
    pub fn new(
        name: &str,
        settings: &UpstreamSettings,
        resolved: &[(&str, Vec<std::net::SocketAddr>)],
    ) -> Result<Upstream, String> {
        let tls = settings.tls.as_ref().map(PeerTls::load).transpose()?;
        let mut members: Vec<Member> = Vec::new();
        for (i, (written, addrs)) in resolved.iter().enumerate() {
            let weight = settings.weights.get(i).copied().unwrap_or(1).max(1) as usize;
            for addr in addrs {
                let addr = SocketAddr::Inet(*addr);
                // A name written twice, or two names for one address: one member.
                if members.iter().any(|m| m.addr == addr) {
                    continue;
                }
                members.push(Member {
                    target: Target::of(name, &addr.to_string()),
                    authority: authority(written, tls.is_some()),
                    addr,
                    weight,
                    probe: None,
                });
            }
        }
        if members.is_empty() {
            return Err("no target resolved to an address".into());
        }
        let backends = members
            .iter()
            .map(|m| Backend {
                addr: m.addr.clone(),
                weight: m.weight,
                ext: Default::default(),
            })
            .collect();
        let mut up = Upstream {
            name: name.to_string(),
            rotation: balancer(&backends),
            ring: match &settings.balance {
                Balance::Hash(key) => Some((balancer(&backends), key.clone())),
                _ => None,
            },
            least_inflight: settings.balance == Balance::LeastInflight,
            members: Vec::new(),
            timeouts: settings.timeouts,
            tls,
            eject: settings.eject,
            check: settings.check.clone(),
            host_header: settings.host_header.clone(),
            retries: settings.retries,
            gate: settings.admission.map(|a| admission::gate(name, a)),
            counters: admission::counters(name),
        };
        if let Some(check) = &settings.check {
            for m in &mut members {
                m.probe = Some(up.probe_of(m, check));
            }
        }
        up.members = members;
        Ok(up)
    }

    fn probe_of(&self, m: &Member, check: &Check) -> HttpHealthCheck {
        let host = match &self.host_header {
            HostHeader::Fixed(h) => h.as_str(),
            _ => m.authority.as_str(),
        };
        let mut probe = HttpHealthCheck::new(host, false);
        probe.peer_template = self.peer_of(m);
        probe.peer_template.options.connection_timeout = Some(check.timeout);
        probe.peer_template.options.read_timeout = Some(check.timeout);
        probe.peer_template.options.write_timeout = Some(check.timeout);
        if let Ok(req) = RequestHeader::build("GET", check.path.as_bytes(), None) {
            let mut req = req;
            let _ = req.insert_header(http::header::HOST, host);
            let _ = req.insert_header(http::header::USER_AGENT, "kavro-check");
            probe.req = req;
        }
        let expected = check.status;
        probe.validator = Some(Box::new(move |resp| {
            let ok = match expected {
                Some(s) => resp.status.as_u16() == s,
                None => resp.status.is_success(),
            };
            if ok {
                Ok(())
            } else {
                pingora_core::Error::e_explain(
                    pingora_core::ErrorType::CustomCode("unexpected status", resp.status.as_u16()),
                    format!("the check answered {}", resp.status.as_u16()),
                )
            }
        }));
        probe
    }

    fn peer_of(&self, m: &Member) -> HttpPeer {
        let mut peer = match &self.tls {
            None => HttpPeer::new(m.addr.clone(), false, String::new()),
            Some(tls) => {
                let host = m
                    .authority
                    .rsplit_once(':')
                    .map_or(&*m.authority, |(h, _)| h);
                tls.peer(m.addr.clone(), host.trim_matches(['[', ']']))
            }
        };
        apply_timeouts(&self.timeouts, &mut peer);
        peer
    }

    fn member(&self, addr: &SocketAddr) -> Option<&Member> {
        self.members.iter().find(|m| &m.addr == addr)
    }

    /// The target for a caller that reports how its request went to the
    /// target's health itself (a plugin's outbound HTTP): its address.
    pub fn pick(&self) -> Option<(String, Arc<Target>)> {
        let m = self.choose(&[], None)?;
        Some((m.addr.to_string(), m.target.clone()))
    }

    /// The next member in rotation and not in `tried`, by the balance.
    fn choose(&self, tried: &[Arc<Target>], key: Option<&[u8]>) -> Option<&Member> {
        // A trial request has the target for as long as it may take.
        let trial = self.timeouts.connect + self.timeouts.read;
        let untried = |m: &Member| !tried.iter().any(|t| Arc::ptr_eq(t, &m.target));
        self.select(
            key,
            |m| untried(m) && m.target.could_take(),
            |m| untried(m) && m.target.available(trial),
        )
    }

    /// The member the balance picks among those `accept` takes. `accept`
    /// may take a target's trial: it is asked in order of preference and
    /// the first it takes is the answer. `could` says, taking nothing,
    /// whether `accept` might take a member, for weighing them first.
    fn select(
        &self,
        key: Option<&[u8]>,
        could: impl Fn(&Member) -> bool,
        accept: impl Fn(&Member) -> bool,
    ) -> Option<&Member> {
        if let [only] = self.members.as_slice() {
            return accept(only).then_some(only);
        }
        if let (Some((ring, _)), Some(key)) = (&self.ring, key) {
            // The ring walks on from the key's point, so most keys keep
            // their target when another leaves; past its walk, a scan.
            let on_ring = |b: &Backend, _: bool| self.member(&b.addr).is_some_and(&accept);
            if let Some(b) = ring.select_with(key, RING_WALK, on_ring) {
                return self.member(&b.addr);
            }
            let first = ring.select(key, 1)?;
            return self.scan_from(&first.addr, accept);
        }
        if self.least_inflight {
            return self.least_loaded(could, accept);
        }
        // The rotation's pick, weighted; when it is out, the next member in
        // order: a walk of the shared rotation could skip the one that is in.
        let first = self.rotation.select(b"", 1)?;
        match self.member(&first.addr) {
            Some(m) if accept(m) => Some(m),
            _ => self.scan_from(&first.addr, accept),
        }
    }

    /// The first member after `addr`, in order and round, that `accept` takes.
    fn scan_from(&self, addr: &SocketAddr, accept: impl Fn(&Member) -> bool) -> Option<&Member> {
        let n = self.members.len();
        let at = self
            .members
            .iter()
            .position(|m| &m.addr == addr)
            .unwrap_or(0);
        (1..=n)
            .map(|i| &self.members[(at + i) % n])
            .find(|m| accept(m))
    }

    /// The member with the fewest requests under way for its weight, among
    /// those `accept` takes; ties go by the weighted rotation, so idle
    /// targets share requests by weight. Members are weighed with
    /// `could`, and only the chosen one is asked to `accept`, so a target
    /// whose trial is due is not taken by a request that goes elsewhere.
    fn least_loaded(
        &self,
        could: impl Fn(&Member) -> bool,
        accept: impl Fn(&Member) -> bool,
    ) -> Option<&Member> {
        let n = self.members.len();
        let first = self.rotation.select(b"", 1)?;
        let start = self
            .members
            .iter()
            .position(|m| m.addr == first.addr)
            .unwrap_or(0);
        let mut ranked: Vec<(&Member, usize)> = (0..n)
            .map(|i| &self.members[(start + i) % n])
            .filter(|m| could(m))
            .map(|m| (m, m.target.inflight()))
            .collect();
        // load / weight, without division; the sort keeps the rotation's
        // order among equals.
        ranked.sort_by(|(a, a_load), (b, b_load)| (a_load * b.weight).cmp(&(b_load * a.weight)));
        ranked.into_iter().map(|(m, _)| m).find(|m| accept(m))
    }

    /// What a hashed upstream hashes for this request, as it goes
    /// upstream: a header a prepare plugin's forward sets replaces the
    /// client's, so a plugin can pin a session. `None` when the request
    /// has no such key (it goes round robin) or the upstream does not hash.
    pub fn hash_key(
        &self,
        req: &RequestHeader,
        forward: &[(http::HeaderName, HeaderValue)],
        client_ip: Option<std::net::IpAddr>,
    ) -> Option<Vec<u8>> {
        let (_, key) = self.ring.as_ref()?;
        let values = |name: &http::HeaderName| -> Vec<&HeaderValue> {
            let set: Vec<_> = forward
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v)
                .collect();
            if set.is_empty() {
                req.headers.get_all(name).iter().collect()
            } else {
                set
            }
        };
        match key {
            HashKey::ClientIp => client_ip.map(|ip| ip.to_string().into_bytes()),
            HashKey::Header(name) => values(name).first().map(|v| v.as_bytes().to_vec()),
            HashKey::Cookie(name) => values(&http::header::COOKIE)
                .into_iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_bytes().to_vec()),
        }
    }

    /// Whether a request that made `attempts` may make another: within
    /// the upstream's attempts and its budget of requests retrying at once.
    pub fn may_retry(
        &self,
        attempts: u32,
        route: Option<&RetryOverrides>,
        held: &mut Option<Retrying>,
    ) -> bool {
        attempts < self.retries.with(route).attempts
            && self
                .counters
                .may_retry(self.inflight(), self.retries.budget_percent, held)
    }

    /// Whether a request whose connection to its `tried`th target failed
    /// may try another. A refused one reached no target, so the first such
    /// retry adds no load anywhere and stays outside the budget (a burst
    /// caught by a target that just died is not refused); later ones, and
    /// connections that timed out or failed their handshake (work for a
    /// target, perhaps a struggling one), count against it.
    pub fn may_retry_connect(
        &self,
        attempts: u32,
        tried: usize,
        refused: bool,
        route: Option<&RetryOverrides>,
        held: &mut Option<Retrying>,
    ) -> bool {
        if !refused || tried > 1 || held.is_some() {
            return self.may_retry(attempts, route, held);
        }
        let allowed = attempts < self.retries.with(route).attempts;
        if allowed {
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// The timeouts of an attempt begun `elapsed` after the request came:
    /// the route's over the upstream's, each cut to what is left of the
    /// total. `None` when they are the upstream's own (already on the
    /// peer); `Err` when the total is spent.
    pub fn attempt_timeouts(
        &self,
        route: Option<&TimeoutOverrides>,
        elapsed: Duration,
    ) -> Result<Option<Timeouts>, Duration> {
        let mut t = match route {
            None if self.timeouts.total.is_none() => return Ok(None),
            None => self.timeouts,
            Some(r) => self.timeouts.with(r),
        };
        if let Some(total) = t.total {
            let left = total.saturating_sub(elapsed);
            if left.is_zero() {
                return Err(total);
            }
            t.connect = t.connect.min(left);
            t.read = t.read.min(left);
            t.write = Some(t.write.map_or(left, |w| w.min(left)));
        }
        Ok(Some(t))
    }

    /// Requests under way on its targets.
    pub fn inflight(&self) -> usize {
        self.members.iter().map(|m| m.target.inflight()).sum()
    }

    /// The targets it spreads over (resolved addresses).
    pub fn target_count(&self) -> usize {
        self.members.len()
    }

    /// How long until a target may be back, for a 503's `Retry-After`:
    /// the first ejection to end, or for a target down by its checks,
    /// `rise` checks; a second when nothing better is known (a trial under
    /// way, targets this request tried).
    pub fn retry_after(&self) -> Duration {
        self.members
            .iter()
            .filter_map(|m| match &self.check {
                Some(c) if !m.target.probed_up() => Some(c.interval * c.rise),
                _ => Some(m.target.ejected_for()).filter(|d| !d.is_zero()),
            })
            .min()
            .unwrap_or(Duration::from_secs(1))
    }

    /// The upstream and its targets, for /diagnostics.
    pub fn report(&self) -> serde_json::Value {
        let mut targets: Vec<_> = self.members.iter().map(|m| m.target.report()).collect();
        targets.sort_by(|a, b| a["target"].as_str().cmp(&b["target"].as_str()));
        let c = &self.counters;
        let mut report = serde_json::json!({
            "balance": match (&self.ring, self.least_inflight) {
                (Some(_), _) => "hash",
                (None, true) => "least_inflight",
                (None, false) => "round_robin",
            },
            "inflight": self.inflight(),
            "shed": c.shed.load(Ordering::Relaxed),
            "queue_timeouts": c.queue_timeouts.load(Ordering::Relaxed),
            "retries": c.retries.load(Ordering::Relaxed),
            "retries_refused": c.retries_refused.load(Ordering::Relaxed),
            "targets": targets,
        });
        if let Some(g) = &self.gate {
            let limits = g.limits();
            report["max_inflight"] = limits.max_inflight.into();
            report["max_queue"] = limits.max_queue.into();
            report["queued"] = g.queued().into();
        }
        report
    }

    /// The next target in rotation and not in `tried` (this request's
    /// earlier attempts); `None` when there is none.
    pub fn peer(&self, tried: &[Arc<Target>], key: Option<&[u8]>) -> Option<Chosen> {
        let m = self.choose(tried, key)?;
        let host = match &self.host_header {
            HostHeader::Client => None,
            HostHeader::Target => HeaderValue::from_str(&m.authority).ok(),
            HostHeader::Fixed(h) => HeaderValue::from_str(h).ok(),
        };
        Some(Chosen {
            peer: Box::new(self.peer_of(m)),
            target: m.target.clone(),
            host,
        })
    }

    /// Each target with its active check, for the prober.
    pub fn probes(&self) -> impl Iterator<Item = (&Arc<Target>, &HttpHealthCheck, Backend)> {
        self.members.iter().filter_map(|m| {
            let probe = m.probe.as_ref()?;
            let backend = Backend {
                addr: m.addr.clone(),
                weight: m.weight,
                ext: Default::default(),
            };
            Some((&m.target, probe, backend))
        })
    }

    /// Each target, for callers that reset what they know (checks removed).
    pub fn targets(&self) -> impl Iterator<Item = &Arc<Target>> {
        self.members.iter().map(|m| &m.target)
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Prometheus lines for every upstream of the config in use.
pub fn metrics(upstreams: &HashMap<String, Arc<Upstream>>, out: &mut String) {
    use std::fmt::Write;
    let mut sorted: Vec<_> = upstreams.values().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    type Figure = fn(&Upstream) -> u64;
    let per_upstream: [(&str, &str, &str, Figure); 6] = [
        (
            "shed_total",
            "counter",
            "Requests refused because the queue was full.",
            |u| u.counters.shed.load(Ordering::Relaxed),
        ),
        (
            "queue_timeouts_total",
            "counter",
            "Requests whose wait in the queue ran out.",
            |u| u.counters.queue_timeouts.load(Ordering::Relaxed),
        ),
        (
            "retries_total",
            "counter",
            "Attempts made again on another or the same target.",
            |u| u.counters.retries.load(Ordering::Relaxed),
        ),
        (
            "retries_refused_total",
            "counter",
            "Retries that the budget refused.",
            |u| u.counters.retries_refused.load(Ordering::Relaxed),
        ),
        ("queued", "gauge", "Requests waiting for a slot.", |u| {
            u.gate.as_ref().map_or(0, |g| g.queued() as u64)
        }),
        ("inflight", "gauge", "Requests under way.", |u| {
            u.inflight() as u64
        }),
    ];
    for (name, kind, help, figure) in per_upstream {
        let _ = writeln!(
            out,
            "# HELP kavro_upstream_{name} {help}\n# TYPE kavro_upstream_{name} {kind}"
        );
        for u in &sorted {
            let _ = writeln!(
                out,
                "kavro_upstream_{name}{{upstream=\"{}\"}} {}",
                u.name,
                figure(u)
            );
        }
    }
    type TargetFigure = fn(&Target) -> u64;
    let per_target: [(&str, &str, &str, TargetFigure); 5] = [
        ("up", "gauge", "1 while the target is in rotation.", |t| {
            u64::from(t.in_rotation())
        }),
        (
            "inflight",
            "gauge",
            "Requests under way on the target.",
            |t| t.inflight() as u64,
        ),
        (
            "requests_total",
            "counter",
            "Attempts sent to the target.",
            |t| t.requests.load(Ordering::Relaxed),
        ),
        (
            "failures_total",
            "counter",
            "Attempts that failed on the target.",
            |t| t.failures.load(Ordering::Relaxed),
        ),
        (
            "ejections_total",
            "counter",
            "Times the target was ejected.",
            |t| t.ejections(),
        ),
    ];
    for (name, kind, help, figure) in per_target {
        let _ = writeln!(out, "# HELP kavro_upstream_target_{name} {help}\n# TYPE kavro_upstream_target_{name} {kind}");
        for u in &sorted {
            for m in &u.members {
                let _ = writeln!(
                    out,
                    "kavro_upstream_target_{name}{{upstream=\"{}\",target=\"{}\"}} {}",
                    u.name,
                    m.target.target,
                    figure(&m.target)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn upstream(section: &str) -> Upstream {
        let text = format!("[upstreams.u]\n{section}\n");
        let c = Config::parse("k.toml", &text).unwrap();
        let s = &c.upstreams["u"];
        let resolved: Vec<(&str, Vec<std::net::SocketAddr>)> = s
            .targets
            .iter()
            .map(|t| (t.as_str(), vec![t.parse().unwrap()]))
            .collect();
        Upstream::new("u", s, &resolved).unwrap()
    }

    fn picks(up: &Upstream, n: usize, key: Option<&[u8]>) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for _ in 0..n {
            let c = up.peer(&[], key).unwrap();
            *seen.entry(c.target.target.clone()).or_default() += 1;
        }
        seen
    }

    #[test]
    fn weights_share_the_rotation() {
        let up =
            upstream("targets = [\"127.0.0.1:9101\", { target = \"127.0.0.1:9102\", weight = 3 }]");
        let seen = picks(&up, 400, None);
        assert_eq!(seen["127.0.0.1:9101"], 100, "{seen:?}");
        assert_eq!(seen["127.0.0.1:9102"], 300, "{seen:?}");
    }

    #[test]
    fn least_inflight_avoids_the_busy_target() {
        let up = upstream(
            "targets = [\"127.0.0.1:9111\", \"127.0.0.1:9112\"]\nbalance = \"least_inflight\"",
        );
        let busy = up.peer(&[], None).unwrap();
        let _held: Vec<_> = (0..3).map(|_| busy.target.busy()).collect();
        let seen = picks(&up, 10, None);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(!seen.contains_key(&busy.target.target), "{seen:?}");
    }

    #[test]
    fn least_inflight_takes_no_trial_of_a_target_it_passes_over() {
        let up = upstream(
            "targets = [\"127.0.0.1:9141\", \"127.0.0.1:9142\"]\nbalance = \"least_inflight\"\n\
             eject = { failures = 1, base_ms = 1, max_ms = 1 }",
        );
        let a = &up.members[0].target;
        a.failed(&up.eject);
        std::thread::sleep(Duration::from_millis(5));
        let _load = a.busy();
        for _ in 0..4 {
            let c = up.peer(&[], None).unwrap();
            assert_eq!(c.target.target, "127.0.0.1:9142");
        }
        assert!(
            a.could_take(),
            "the trial is still there for the one that picks it"
        );
    }

    #[test]
    fn idle_least_inflight_shares_by_weight() {
        let up = upstream(
            "targets = [\"127.0.0.1:9151\", { target = \"127.0.0.1:9152\", weight = 3 }]\n\
             balance = \"least_inflight\"",
        );
        let seen = picks(&up, 8, None);
        assert_eq!(
            seen["127.0.0.1:9152"], 6,
            "idle targets share by weight: {seen:?}"
        );
        assert_eq!(seen["127.0.0.1:9151"], 2, "{seen:?}");
    }

    #[test]
    fn a_hash_key_stays_on_its_target() {
        let up = upstream(
            "targets = [\"127.0.0.1:9121\", \"127.0.0.1:9122\", \"127.0.0.1:9123\"]\nhash_on = \"header:x-user\"",
        );
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("x-user", "ada").unwrap();
        let key = up.hash_key(&req, &[], None).unwrap();
        // A forward's header replaces the client's: a plugin pins the session.
        let forward = [("x-user".parse().unwrap(), HeaderValue::from_static("grace"))];
        assert_eq!(up.hash_key(&req, &forward, None).unwrap(), b"grace");
        assert_eq!(picks(&up, 20, Some(&key)).len(), 1);
        let spread = (0..50)
            .map(|i| {
                up.peer(&[], Some(format!("user{i}").as_bytes()))
                    .unwrap()
                    .target
                    .target
                    .clone()
            })
            .collect::<std::collections::HashSet<_>>();
        assert_eq!(spread.len(), 3, "keys spread over every target");
        // Without the key: round robin.
        assert_eq!(picks(&up, 30, None).len(), 3);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let up = upstream("targets = [\"127.0.0.1:9131\"]\nhash_on = \"cookie:sid\"");
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("cookie", "a=1; sid=xyz; b=2").unwrap();
        assert_eq!(up.hash_key(&req, &[], None).unwrap(), b"xyz");
    }

    #[test]
    fn host_header_of_the_target_drops_the_default_port() {
        assert_eq!(authority("example.com:80", false), "example.com");
        assert_eq!(authority("example.com:443", true), "example.com");
        assert_eq!(authority("example.com:8080", false), "example.com:8080");
    }
}
