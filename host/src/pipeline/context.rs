//! What one request carries through the pipeline.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue};
use sync_wrapper::SyncWrapper;

use super::caching::RequestCache;
use crate::config::{RetryOverrides, TimeoutOverrides};
use crate::plugin::{Instance, PluginSet, RequestInfo};
use crate::shutdown::InFlight;
use crate::upstream::admission::{Refused, Retrying, Slot};
use crate::upstream::target::{Busy, Target};
use crate::upstream::Upstream;
use crate::Active;

/// A body held back for the present chain.
pub struct PresentBuffer {
    pub body: BytesMut,
    pub limit: usize,
    /// The response head as it was sent, for the plugins to read.
    pub head: pingora_http::ResponseHeader,
}

pub struct Ctx {
    /// The config and plugin set this request started with; a hot swap
    /// does not change them under it.
    pub active: Arc<Active>,
    pub seq: u64,
    /// The request's id, kept or generated; sent up and back down.
    pub id: HeaderValue,
    /// The client: the TCP peer, or whom a trusted proxy forwards for.
    pub client_ip: Option<std::net::IpAddr>,
    /// The TCP peer, when it is a trusted proxy (`[server] trusted_proxies`).
    pub proxy_ip: Option<std::net::IpAddr>,
    /// The request came over TLS.
    pub https: bool,
    /// What plugins learn beyond the head; built on first plugin use, so a
    /// request no plugin sees never pays for it.
    info: Option<Arc<RequestInfo>>,
    pub started: Instant,
    /// Index of the matched route.
    pub route: Option<usize>,
    /// Instances checked out for this request, by plugin index. Pingora
    /// wants a `Sync` context; an instance is only ever used through `&mut`.
    pub instances: Vec<Option<SyncWrapper<Instance>>>,
    /// Plugins (by index) that failed during this request and are skipped
    /// for the rest of it.
    failed: Vec<usize>,
    /// Plugins (by index) whose `paths` leave this request's path out.
    out_of_scope: Vec<usize>,
    pub upstream: Option<Arc<Upstream>>,
    /// The target of the attempt in progress, whose health its outcome counts for.
    pub target: Option<Arc<Target>>,
    /// The targets this request tried and could not connect to.
    pub tried: Vec<Arc<Target>>,
    /// Counts the attempt under way on its target, for least-inflight.
    pub busy: Option<Busy>,
    /// The request's place among the upstream's `max_inflight`.
    pub slot: Option<Slot>,
    /// The matched route's own timeouts towards the upstream.
    pub route_timeouts: Option<TimeoutOverrides>,
    /// The matched route's own retries.
    pub route_retries: Option<RetryOverrides>,
    /// Attempts made on the upstream, the first included.
    pub attempts: u32,
    /// Set once the request retried: its place in the retry budget.
    pub retrying: Option<Retrying>,
    /// Why the upstream turned the request away, for the 503.
    pub refused: Option<Refusal>,
    /// The Host header the upstream sends instead of the client's.
    pub upstream_host: Option<HeaderValue>,
    /// A prepare plugin's forward: new URI and headers for the upstream request.
    pub forward_uri: Option<http::Uri>,
    pub forward_headers: Vec<(HeaderName, HeaderValue)>,
    /// Boxed: the context lives in every request's future, which Pingora
    /// moves; most requests need none.
    pub present: Option<Box<PresentBuffer>>,
    pub bytes_sent: u64,
    pub error: Option<String>,
    /// Set when a proxied response's head was replaced (by an error's, or
    /// by a stored response's): `replaced_body` goes instead of the
    /// upstream's body.
    pub body_replaced: bool,
    pub replaced_body: Option<Bytes>,
    /// Names `replaced_body` for its kept compressed forms (a stored one).
    pub replaced_identity: Option<std::sync::Arc<str>>,
    /// The route lets Kavro compress its responses.
    pub compress: bool,
    /// The route's Cache-Control towards clients, for responses without one.
    pub client_cache: Option<HeaderValue>,
    /// A proxied body's compressor, when it goes compressed.
    pub compressing: Option<Box<crate::compression::Compressing>>,
    /// The client waits for `100 Continue` before its body.
    pub expects_continue: bool,
    /// The route's request body limit, and what was read of the body.
    pub body_limit: Option<u64>,
    pub body_read: u64,
    pub cache: RequestCache,
    /// Counts the request as under way until its post phase is done (the
    /// context moves into post); a shutdown waits for it.
    pub in_flight: Option<InFlight>,
}

/// Why a proxied request was answered 503 without a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every target is ejected or down.
    NoTarget,
    Admission(Refused),
}

impl Ctx {
    pub fn new(active: Arc<Active>, in_flight: Option<InFlight>) -> Ctx {
        Ctx {
            active,
            seq: 0,
            id: HeaderValue::from_static("-"),
            client_ip: None,
            proxy_ip: None,
            https: false,
            info: None,
            started: Instant::now(),
            route: None,
            instances: Vec::new(),
            failed: Vec::new(),
            out_of_scope: Vec::new(),
            upstream: None,
            target: None,
            tried: Vec::new(),
            busy: None,
            slot: None,
            route_timeouts: None,
            route_retries: None,
            attempts: 0,
            retrying: None,
            refused: None,
            upstream_host: None,
            forward_uri: None,
            forward_headers: Vec::new(),
            present: None,
            bytes_sent: 0,
            error: None,
            body_replaced: false,
            replaced_body: None,
            replaced_identity: None,
            compress: false,
            client_cache: None,
            compressing: None,
            expects_continue: false,
            body_limit: None,
            body_read: 0,
            cache: RequestCache::default(),
            in_flight,
        }
    }

    /// Whether request_filter has begun the request (it numbers it).
    pub fn started(&self) -> bool {
        self.seq != 0
    }

    /// Ends the request's hold on its upstream: its slot and its count on
    /// the target. Post runs after this.
    pub fn leave_upstream(&mut self) {
        self.busy = None;
        self.slot = None;
        self.retrying = None;
    }

    pub fn request_id(&self) -> &str {
        self.id.to_str().unwrap_or("-")
    }

    pub fn mark_failed(&mut self, plugin: usize) {
        self.failed.push(plugin);
    }

    pub fn has_failed(&self, plugin: usize) -> bool {
        self.failed.contains(&plugin)
    }

    /// Whether plugin `i` sits this request out: it failed earlier in it,
    /// or its `paths` leave the request's path out.
    pub fn skips(&self, plugin: usize) -> bool {
        self.failed.contains(&plugin) || self.out_of_scope.contains(&plugin)
    }

    /// Whether some plugin of `chain` has a turn in this request.
    pub fn any_turn(&self, chain: &[usize]) -> bool {
        chain.iter().any(|&i| !self.skips(i))
    }

    /// Scopes the path-scoped plugins to `path` (the request's, as routing
    /// sees it).
    pub fn scope_to(&mut self, set: &PluginSet, path: &str) {
        let plain = crate::routing::plain_path(path);
        self.out_of_scope.clear();
        self.out_of_scope.extend(set.out_of_scope(path, &plain));
    }

    /// Whether any plugin failed during this request.
    pub fn any_failed(&self) -> bool {
        !self.failed.is_empty()
    }

    pub fn info(&mut self) -> Arc<RequestInfo> {
        let (id, ip, https) = (&self.id, self.client_ip, self.https);
        self.info
            .get_or_insert_with(|| {
                Arc::new(RequestInfo {
                    id: id.to_str().unwrap_or_default().to_string(),
                    client_ip: ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    scheme: if https { "https" } else { "http" },
                })
            })
            .clone()
    }
}
