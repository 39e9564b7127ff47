//! The pipeline's side of the response cache, and what one request carries
//! about it: what prime chose, the lookup after prime, and storing a
//! response once it is complete (after present, before package).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::actions::{Body, Produced};
use crate::cache::policy::{request_eligible, storable_for};
use crate::cache::Directive;
use crate::cache::{Entry, FillLock, Lookup, ResponseCache, RoutePolicy};
use crate::plugin::caps::cache::CacheChoice;

pub static X_KAVRO_CACHE: http::HeaderName = http::HeaderName::from_static("x-kavro-cache");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Bypass => "BYPASS",
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
}

/// A response on its way into the cache.
pub struct Fill {
    key: String,
    policy: Arc<RoutePolicy>,
    /// Held by the request that fills the key; others wait for it.
    _lock: Option<FillLock>,
    /// A proxied response: its head, the body so far, its lifetime and
    /// when its head arrived.
    streamed: Option<(ResponseHeader, BytesMut, Duration, Instant)>,
}

fn bump(c: &std::sync::atomic::AtomicU64) {
    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn hit(entry: &Entry) -> Produced {
    let mut head = entry.head.clone();
    let _ = head.insert_header(http::header::AGE, entry.age().to_string());
    Produced {
        head: Box::new(head),
        body: Body::Bytes(entry.body.clone()),
    }
}

impl RequestCache {
    /// Looks the request up on a route that caches. Returns the stored response
    /// on a hit; on a miss, arms the fill so the response is stored.
    pub async fn lookup(
        &mut self,
        cache: &ResponseCache,
        req: &RequestHeader,
        host: &str,
        https: bool,
        policy: &Arc<RoutePolicy>,
    ) -> Option<Produced> {
        let key = match self.choice.take() {
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
        // HEAD is answered from a GET entry but never fills one.
        let head_only = req.method == http::Method::HEAD;
        let found = if head_only {
            cache.get(&key, req).map_or(Lookup::Miss(None), Lookup::Hit)
        } else {
            cache.lookup(&key, req).await
        };
        match found {
            Lookup::Hit(entry) => {
                self.status = Some(CacheStatus::Hit);
                bump(&cache.stats.hits);
                Some(hit(&entry))
            }
            Lookup::Miss(lock) => {
                self.status = Some(CacheStatus::Miss);
                bump(&cache.stats.misses);
                if !head_only {
                    self.fill = Some(Box::new(Fill {
                        key,
                        policy: policy.clone(),
                        _lock: lock,
                        streamed: None,
                    }));
                }
                None
            }
        }
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
        if plugin_failed {
            return;
        }
        if let Body::Bytes(body) = &p.body {
            if let Some(ttl) = storable_for(&fill.policy, &p.head, self.directive) {
                cache.store(&fill.key, req, (*p.head).clone(), body.clone(), ttl);
            }
        }
    }

    /// At a proxied response's head: keep collecting its body if it may be
    /// stored, or let go of the fill (and wake the waiters) now.
    pub fn begin_streamed(&mut self, cache: &ResponseCache, resp: &ResponseHeader) {
        let Some(fill) = self.fill.as_mut() else {
            return;
        };
        let announced = resp
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let fits = announced.is_none_or(|n| n <= cache.max_object_bytes);
        match storable_for(&fill.policy, resp, None).filter(|_| fits) {
            Some(ttl) => fill.streamed = Some((resp.clone(), BytesMut::new(), ttl, Instant::now())),
            None => self.fill = None,
        }
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
        if failed {
            return;
        }
        if let Some((head, body, ttl, arrived)) = fill.streamed {
            // The lifetime runs from the head's arrival, not the body's end.
            let ttl = ttl.saturating_sub(arrived.elapsed());
            if !ttl.is_zero() {
                cache.store(&fill.key, req, head, body.freeze(), ttl);
            }
        }
    }
}
