//! The pipeline's side of the response cache, and what one request carries
//! about it: what prime chose, the lookup after prime, revalidation and
//! stale answers, invalidation by unsafe methods, and storing a response
//! once it is complete (after present, before package).

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use http::{header, Method};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::actions::{Body, Produced};
use crate::cache::policy::{request_eligible, storable_for};
use crate::cache::{Directive, Lifetime};
use crate::cache::{Entry, FillLock, Lookup, ResponseCache, RoutePolicy};
use crate::plugin::caps::cache::CacheChoice;
use crate::routing::normalize_host;

pub static X_KAVRO_CACHE: http::HeaderName = http::HeaderName::from_static("x-kavro-cache");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Bypass,
    /// A stale entry served: while it is refreshed, or in place of a
    /// failing origin.
    Stale,
    /// A stale entry the origin confirmed with a 304, served.
    Revalidated,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Bypass => "BYPASS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Revalidated => "REVALIDATED",
        }
    }
}

/// What one request carries about the cache.
#[derive(Default)]
pub struct RequestCache {
    /// What prime plugins chose.
    pub choice: Option<CacheChoice>,
    /// A prepare reply's directive.
    pub directive: Option<Directive>,
    /// Set on routes that cache: what the cache did for this request.
    pub status: Option<CacheStatus>,
    /// The response to store when complete. Boxed: the context lives in
    /// every request's future, which Pingora moves; most requests need none.
    fill: Option<Box<Fill>>,
    /// A background refresh: set on the subrequest that does one, or on
    /// the request whose stale answer starts one.
    refresh: Option<Box<Refresh>>,
    /// After an unsafe method: what a success invalidates.
    invalidate: Option<Box<Invalidation>>,
}

/// A refresh of a stale entry, done in the background by a Pingora
/// subrequest that runs the pipeline as a miss does. It holds the key's
/// fill lock, so that one refresh runs at a time.
pub struct Refresh {
    lock: FillLock,
    stale: Arc<Entry>,
}

/// A response on its way into the cache.
pub struct Fill {
    key: String,
    policy: Arc<RoutePolicy>,
    /// Held by the request that fills the key; others wait for it.
    lock: Option<FillLock>,
    /// The stale entry being revalidated, which may also answer in place
    /// of a failing origin.
    stale: Option<Arc<Entry>>,
    /// The upstream request carried the stale entry's validators.
    conditional: bool,
    /// A background refresh: nobody waits for its answer, so a stale
    /// entry never stands in for a failure.
    background: bool,
    /// A proxied response: its head, the body so far, its lifetime and
    /// when its head arrived.
    streamed: Option<(ResponseHeader, BytesMut, Lifetime, Instant)>,
}

impl Fill {
    /// Whether what this fill fetched may be stored: not after a purge of
    /// its key came while it was under way.
    fn may_store(&self) -> bool {
        !self.lock.as_ref().is_some_and(FillLock::purged)
    }
}

/// RFC 9111 §4.4: what a request with an unsafe method invalidates when it
/// succeeds.
struct Invalidation {
    key: String,
    host: String,
    query: bool,
}

fn bump(c: &std::sync::atomic::AtomicU64) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn hit(entry: &Entry) -> Produced {
    let mut head = entry.head.clone();
    let _ = head.insert_header(header::AGE, entry.age().to_string());
    Produced {
        head: Box::new(head),
        body: Body::Bytes(entry.body.clone()),
        identity: Some(entry.identity.clone()),
    }
}

/// What the store answers `req` with: the entry, or a 304 when the
/// client's own validators match it.
fn answer(entry: &Entry, req: &RequestHeader) -> Produced {
    let mut p = hit(entry);
    if entry.not_modified_for(req) {
        let _ = p.head.set_status(http::StatusCode::NOT_MODIFIED);
        p.head.remove_header(&header::CONTENT_LENGTH);
        p.body = Body::Empty;
    }
    p
}

/// Methods that change what they act on (RFC 9110 §9.2.1).
fn unsafe_method(m: &Method) -> bool {
    !matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl RequestCache {
    /// Looks the request up on a route that caches. Returns the stored
    /// response on a hit, or a stale one that may be served; on a miss,
    /// arms the fill so the response is stored.
    pub async fn lookup(
        &mut self,
        cache: &ResponseCache,
        req: &RequestHeader,
        host: &str,
        https: bool,
        policy: &Arc<RoutePolicy>,
    ) -> Option<Produced> {
        if let Some(refresh) = self.refresh.take() {
            self.status = Some(CacheStatus::Miss);
            let Refresh { lock, stale } = *refresh;
            self.fill = Some(Box::new(Fill {
                key: lock.key().to_string(),
                policy: policy.clone(),
                lock: Some(lock),
                stale: Some(stale),
                conditional: false,
                background: true,
                streamed: None,
            }));
            return None;
        }
        let choice = self.choice.take();
        if unsafe_method(&req.method) {
            // Without the scheme: a purge of the plain key takes both.
            let key = match &choice {
                Some(CacheChoice::Key(k)) => k.clone(),
                _ => ResponseCache::key(host, req, policy.query, false),
            };
            self.invalidate = Some(Box::new(Invalidation {
                key,
                host: host.to_string(),
                query: policy.query,
            }));
        }
        let key = match choice {
            Some(CacheChoice::Bypass) => None,
            _ if !request_eligible(req) => None,
            Some(CacheChoice::Key(k)) => Some(k),
            None => Some(ResponseCache::key(host, req, policy.query, https)),
        };
        let Some(key) = key else {
            self.status = Some(CacheStatus::Bypass);
            bump(&cache.stats.bypasses);
            return None;
        };
        // HEAD is answered from a fresh GET entry but never fills one.
        let head_only = req.method == Method::HEAD;
        let found = if head_only {
            cache
                .get(&key, req)
                .map_or(Lookup::Miss(None, None), Lookup::Hit)
        } else {
            cache.lookup(&key, req).await
        };
        match found {
            Lookup::Hit(entry) => {
                self.status = Some(CacheStatus::Hit);
                bump(&cache.stats.hits);
                Some(answer(&entry, req))
            }
            Lookup::StaleWhileRevalidate(entry, lock) => {
                self.status = Some(CacheStatus::Stale);
                bump(&cache.stats.stale_while_revalidate);
                self.refresh = lock.map(|lock| {
                    Box::new(Refresh {
                        lock,
                        stale: entry.clone(),
                    })
                });
                Some(answer(&entry, req))
            }
            Lookup::Miss(lock, stale) => {
                self.status = Some(CacheStatus::Miss);
                bump(&cache.stats.misses);
                if !head_only {
                    self.fill = Some(Box::new(Fill {
                        key,
                        policy: policy.clone(),
                        lock,
                        stale,
                        conditional: false,
                        background: false,
                        streamed: None,
                    }));
                }
                None
            }
        }
    }

    /// The refresh a stale answer starts, for the pipeline to spawn.
    pub fn take_refresh(&mut self) -> Option<Box<Refresh>> {
        self.refresh.take()
    }

    /// On the subrequest that refreshes an entry.
    pub fn set_refresh(&mut self, refresh: Box<Refresh>) {
        self.refresh = Some(refresh);
    }

    /// Whether the response comes from the store, as present left it.
    pub fn answered_from_store(&self) -> bool {
        matches!(
            self.status,
            Some(CacheStatus::Hit | CacheStatus::Stale | CacheStatus::Revalidated)
        )
    }

    /// Puts the stale entry's validators on the upstream request in place
    /// of the client's (RFC 9111 §4.3.1).
    pub fn add_conditions(&mut self, upstream: &mut RequestHeader) {
        let Some(fill) = self.fill.as_deref_mut() else {
            return;
        };
        let Some(stale) = fill.stale.as_ref() else {
            return;
        };
        let mut conditions = stale.conditions().peekable();
        if conditions.peek().is_none() {
            return;
        }
        upstream.remove_header(&header::IF_NONE_MATCH);
        upstream.remove_header(&header::IF_MODIFIED_SINCE);
        for (name, value) in conditions {
            let _ = upstream.insert_header(name, value);
        }
        fill.conditional = true;
    }

    /// After an unsafe method's response head: a success invalidates the
    /// target URI and the URIs its Location and Content-Location name on
    /// the same host (RFC 9111 §4.4).
    pub fn invalidate_after(&mut self, cache: &ResponseCache, resp: &ResponseHeader) {
        let Some(inv) = self.invalidate.take() else {
            return;
        };
        if !(200..400).contains(&resp.status.as_u16()) {
            return;
        }
        cache.invalidate(&inv.key);
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(uri) = resp
                .headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<http::Uri>().ok())
            else {
                continue;
            };
            let same_host = uri
                .authority()
                .is_none_or(|a| normalize_host(a.as_str()) == inv.host);
            if !same_host || !uri.path().starts_with('/') {
                continue;
            }
            let query = uri.query().filter(|_| inv.query);
            cache.invalidate(&ResponseCache::key_of(&inv.host, uri.path(), query, false));
        }
    }

    /// What answers instead of the origin's response, if anything: the
    /// stored entry a matching 304 confirmed (updated by it), the stale
    /// entry in place of a 5xx within stale-if-error, or an error for a
    /// 304 that matches nothing stored. The fill is done then.
    pub fn stored_instead(
        &mut self,
        cache: &ResponseCache,
        req: &RequestHeader,
        resp: &ResponseHeader,
    ) -> Option<Produced> {
        let fill = self.fill.as_deref()?;
        let stale = fill.stale.as_ref()?;
        let not_modified = resp.status == http::StatusCode::NOT_MODIFIED && fill.conditional;
        let failed = resp.status.is_server_error()
            && !fill.background
            && stale.within_stale_if_error(Instant::now());
        if !not_modified && !failed {
            return None;
        }
        let mut fill = self.fill.take()?;
        let stale = fill.stale.take()?;
        if failed {
            self.status = Some(CacheStatus::Stale);
            bump(&cache.stats.stale_if_error);
            return Some(hit(&stale));
        }
        if !stale.matches(resp) {
            // RFC 9111 §4.3.4: not merged, and the entry cannot be trusted.
            cache.purge(&fill.key);
            return Some(Produced::text(
                502,
                "502 Bad Gateway: the upstream answered 304 Not Modified with validators that match no stored response\n",
            ));
        }
        let mut head = stale.updated_head(resp);
        self.status = Some(CacheStatus::Revalidated);
        bump(&cache.stats.revalidated_304);
        match storable_for(&fill.policy, &head, self.directive).filter(|_| fill.may_store()) {
            Some(lifetime) => {
                let entry = cache.store(&fill.key, req, head, stale.body.clone(), lifetime);
                entry.map(|e| answer(&e, req))
            }
            None => {
                cache.purge(&fill.key);
                let _ = head.insert_header(header::AGE, stale.age().to_string());
                Some(Produced {
                    head: Box::new(head),
                    body: Body::Bytes(stale.body.clone()),
                    identity: None,
                })
            }
        }
    }

    /// A stale entry to answer with when the origin could not be reached,
    /// within its stale-if-error.
    pub fn stale_on_error(&mut self, cache: &ResponseCache) -> Option<Produced> {
        let fill = self.fill.as_deref().filter(|f| !f.background)?;
        let stale = fill
            .stale
            .as_ref()
            .filter(|s| s.within_stale_if_error(Instant::now()))?;
        let p = hit(stale);
        self.fill = None;
        self.status = Some(CacheStatus::Stale);
        bump(&cache.stats.stale_if_error);
        Some(p)
    }

    /// Stores a response the host produced whole, if it may be stored: not
    /// one a failed plugin may have left half done.
    pub fn store_produced(
        &mut self,
        cache: &ResponseCache,
        req: &RequestHeader,
        p: &Produced,
        plugin_failed: bool,
    ) {
        let Some(fill) = self.fill.take() else { return };
        if plugin_failed || !fill.may_store() {
            return;
        }
        if let Body::Bytes(body) = &p.body {
            if let Some(lifetime) = storable_for(&fill.policy, &p.head, self.directive) {
                cache.store(&fill.key, req, (*p.head).clone(), body.clone(), lifetime);
            }
        }
    }

    /// At a proxied response's head: the stored response to send instead
    /// (see `stored_instead`); else keep collecting its body if it may be stored,
    /// or let go of the fill (and wake the waiters) now.
    pub fn begin_streamed(
        &mut self,
        cache: &ResponseCache,
        req: &RequestHeader,
        resp: &ResponseHeader,
    ) -> Option<Produced> {
        if let Some(stored) = self.stored_instead(cache, req, resp) {
            return Some(stored);
        }
        let fill = self.fill.as_mut()?;
        if fill.conditional && resp.status.is_success() {
            bump(&cache.stats.revalidated_200);
        }
        let announced = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let fits = announced.is_none_or(|n| n <= cache.max_object_bytes);
        match storable_for(&fill.policy, resp, None).filter(|_| fits) {
            Some(lifetime) => {
                fill.streamed = Some((resp.clone(), BytesMut::new(), lifetime, Instant::now()))
            }
            None => self.fill = None,
        }
        None
    }

    /// Whether a proxied body is being collected for the cache.
    pub fn collecting(&self) -> bool {
        self.fill.is_some()
    }

    /// Stores nothing for this request (an error or an unfinished response);
    /// requests waiting for this one stop waiting.
    pub fn abandon(&mut self) {
        self.fill = None;
    }

    /// One chunk of a proxied body (as it leaves present); stores at the end
    /// unless the response `failed`.
    pub fn collect_streamed(
        &mut self,
        cache: &ResponseCache,
        req: &RequestHeader,
        chunk: Option<&bytes::Bytes>,
        end_of_stream: bool,
        failed: bool,
    ) {
        let Some(Fill {
            streamed: Some((_, body, _, _)),
            ..
        }) = self.fill.as_deref_mut()
        else {
            return;
        };
        if let Some(c) = chunk {
            if body.len() + c.len() > cache.max_object_bytes {
                self.fill = None;
                return;
            }
            body.extend_from_slice(c);
        }
        if !end_of_stream {
            return;
        }
        let fill = self.fill.take().expect("matched above");
        if failed || !fill.may_store() {
            return;
        }
        if let Some((head, body, mut lifetime, arrived)) = fill.streamed {
            // The lifetime runs from the head's arrival, not the body's end.
            let spent = arrived.elapsed();
            let fresh = lifetime.fresh;
            lifetime.fresh = fresh.saturating_sub(spent);
            let past = spent.saturating_sub(fresh);
            for window in [
                &mut lifetime.stale_while_revalidate,
                &mut lifetime.stale_if_error,
                &mut lifetime.keep,
            ] {
                *window = window.saturating_sub(past);
            }
            if !lifetime.retained().is_zero() {
                cache.store(&fill.key, req, head, body.freeze(), lifetime);
            }
        }
    }
}

impl Refresh {
    /// Starts the refresh as a background subrequest of `session`, which a
    /// purge of its key ends. Without a spawner, nothing is refreshed and
    /// the lock goes.
    pub fn spawn(self: Box<Self>, cache: &ResponseCache, session: &pingora_proxy::Session) {
        let Some(spawner) = session.subrequest_spawner.as_ref() else {
            return;
        };
        let key = self.lock.key().to_string();
        let filling = self.lock.watch();
        let ctx = pingora_proxy::subrequest::Ctx::builder()
            .user_ctx(Box::new(Some(self)))
            .build();
        let task = spawner.spawn_background_subrequest(session.as_downstream(), ctx);
        cache.refreshing(&key, &filling, task.abort_handle());
    }

    /// The refresh a subrequest was spawned to do.
    pub fn of_subrequest(session: &mut pingora_proxy::Session) -> Option<Box<Refresh>> {
        session
            .subrequest_ctx
            .as_mut()?
            .user_ctx_mut()?
            .downcast_mut::<Option<Box<Refresh>>>()?
            .take()
    }
}
