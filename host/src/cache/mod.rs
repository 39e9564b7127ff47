//! The response cache: moka, bounded by bytes, one TTL per entry, Vary
//! variants, purge by key or prefix, and request coalescing (concurrent
//! misses on one key wait for the first to fill it).
//!
//! Keys are `host` + path (+ `?query` unless the route leaves it out), or
//! what a prime plugin set. Only GET responses are stored; HEAD is answered
//! from them. A response with `Vary` is stored under its key plus the
//! request's values of the named headers, and the key itself holds the list
//! of names, so a lookup finds the right variant in two steps.

pub mod policy;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderName};
use moka::sync::Cache;
use parking_lot::Mutex;
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::sync::watch;

pub use policy::{Directive, RoutePolicy};

/// Longest key a plugin may set.
pub const MAX_KEY: usize = 2048;

/// A stored response: the head as the origin (and present) made it, before
/// package and without per-request headers.
pub struct Entry {
    pub head: ResponseHeader,
    pub body: Bytes,
    stored: Instant,
    /// The age it arrived with (RFC 9111 §4.2.3), part of its `Age`.
    initial_age: Duration,
    ttl: Duration,
}

impl Entry {
    fn fresh(&self, now: Instant) -> bool {
        now.duration_since(self.stored) < self.ttl
    }

    /// Seconds since the entry was stored, for the `Age` header.
    pub fn age(&self) -> u64 {
        (self.initial_age + self.stored.elapsed()).as_secs()
    }
}

#[derive(Clone)]
enum Slot {
    Object(Arc<Entry>),
    /// Responses under this key vary on these request headers.
    Vary(Arc<[HeaderName]>, Duration),
}

impl Slot {
    fn ttl(&self) -> Duration {
        match self {
            Slot::Object(e) => e.ttl,
            Slot::Vary(_, ttl) => *ttl,
        }
    }

    fn weight(&self, key: &str) -> u32 {
        let size = match self {
            Slot::Object(e) => {
                let head: usize = e
                    .head
                    .headers
                    .iter()
                    .map(|(k, v)| k.as_str().len() + v.len() + 4)
                    .sum();
                e.body.len() + head + 64
            }
            Slot::Vary(names, _) => names.iter().map(|n| n.as_str().len()).sum::<usize>() + 32,
        };
        (key.len() + size).min(u32::MAX as usize) as u32
    }
}

struct PerEntryTtl;

impl moka::Expiry<String, Slot> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, v: &Slot, _: std::time::Instant) -> Option<Duration> {
        Some(v.ttl())
    }
    fn expire_after_update(
        &self,
        _: &String,
        v: &Slot,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl())
    }
}

/// Counters for /diagnostics and /metrics.
#[derive(Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub bypasses: AtomicU64,
    pub stores: AtomicU64,
    /// Misses that waited for another request to fill the key.
    pub coalesced: AtomicU64,
}

type Locks = Arc<Mutex<HashMap<String, watch::Receiver<()>>>>;

pub struct ResponseCache {
    slots: Cache<String, Slot>,
    locks: Locks,
    /// Largest body stored.
    pub max_object_bytes: usize,
    /// How long a miss waits for another request filling the same key.
    lock_wait: Duration,
    pub stats: CacheStats,
}

/// What a lookup found.
pub enum Lookup {
    Hit(Arc<Entry>),
    /// Not stored. With a lock, this request fills the key and others wait
    /// for it; without, another request tried and its response was not stored.
    Miss(Option<FillLock>),
}

/// Held by the one request that fills a key; dropping it wakes the waiters.
pub struct FillLock {
    key: String,
    locks: Locks,
    _tx: watch::Sender<()>,
}

impl Drop for FillLock {
    fn drop(&mut self) {
        let mut locks = self.locks.lock();
        if locks
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self._tx.subscribe()))
        {
            locks.remove(&self.key);
        }
    }
}

impl ResponseCache {
    pub fn new(max_bytes: u64, max_object_bytes: usize) -> ResponseCache {
        let slots = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &String, v: &Slot| v.weight(k))
            .expire_after(PerEntryTtl)
            .build();
        ResponseCache {
            slots,
            locks: Arc::default(),
            max_object_bytes,
            lock_wait: Duration::from_secs(30),
            stats: CacheStats::default(),
        }
    }

    /// The default key: host, path, and the query unless left out.
    pub fn key(host: &str, req: &RequestHeader, with_query: bool, https: bool) -> String {
        let path = req.uri.path();
        // HTTPS is marked like a variant, so that a response that differs by
        // scheme (an origin's redirect to HTTPS) is never served to the
        // other, and a purge of `host/path` still removes both.
        let scheme = if https { "\nscheme=https" } else { "" };
        match req.uri.query().filter(|_| with_query) {
            Some(q) => format!("{host}{path}?{q}{scheme}"),
            None => format!("{host}{path}{scheme}"),
        }
    }

    fn variant_key(key: &str, names: &[HeaderName], req: &RequestHeader) -> String {
        let mut k = String::from(key);
        for name in names {
            k.push('\n');
            k.push_str(name.as_str());
            k.push('=');
            for (i, v) in req.headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    k.push(',');
                }
                k.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
        }
        k
    }

    /// The fresh entry for this request under `key`, Vary considered.
    pub fn get(&self, key: &str, req: &RequestHeader) -> Option<Arc<Entry>> {
        let now = Instant::now();
        let entry = match self.slots.get(key)? {
            Slot::Object(e) => e,
            Slot::Vary(names, _) => match self.slots.get(&Self::variant_key(key, &names, req))? {
                Slot::Object(e) => e,
                Slot::Vary(..) => return None,
            },
        };
        entry.fresh(now).then_some(entry)
    }

    /// Looks `key` up; on a miss, either takes the fill lock or waits for
    /// the request holding it and looks again.
    pub async fn lookup(&self, key: &str, req: &RequestHeader) -> Lookup {
        if let Some(e) = self.get(key, req) {
            return Lookup::Hit(e);
        }
        let mut rx = {
            let mut locks = self.locks.lock();
            match locks.get(key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(());
                    locks.insert(key.to_string(), rx);
                    return Lookup::Miss(Some(FillLock {
                        key: key.to_string(),
                        locks: self.locks.clone(),
                        _tx: tx,
                    }));
                }
            }
        };
        self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
        // Wakes when the filler drops its lock, stored or not.
        let _ = tokio::time::timeout(self.lock_wait, rx.changed()).await;
        match self.get(key, req) {
            Some(e) => Lookup::Hit(e),
            None => Lookup::Miss(None),
        }
    }

    /// Stores a response for `req` under `key`. `head` must describe `body`
    /// exactly; per-request headers are removed here.
    pub fn store(
        &self,
        key: &str,
        req: &RequestHeader,
        mut head: ResponseHeader,
        body: Bytes,
        ttl: Duration,
    ) {
        if body.len() > self.max_object_bytes {
            return;
        }
        let initial_age = policy::initial_age(&head, std::time::SystemTime::now());
        head.remove_header("x-request-id");
        head.remove_header("x-kavro-cache");
        head.remove_header(&header::TRANSFER_ENCODING);
        let _ = head.insert_header(header::CONTENT_LENGTH, body.len().to_string());
        let entry = Arc::new(Entry {
            head,
            body,
            stored: Instant::now(),
            initial_age,
            ttl,
        });
        let names: Vec<HeaderName> = entry
            .head
            .headers
            .get_all(header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        if names.is_empty() {
            self.slots.insert(key.to_string(), Slot::Object(entry));
        } else {
            let variant = Self::variant_key(key, &names, req);
            self.slots
                .insert(key.to_string(), Slot::Vary(names.into(), ttl));
            self.slots.insert(variant, Slot::Object(entry));
        }
        self.stats.stores.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes the entry under `key` with all its variants; returns how many went.
    pub fn purge(&self, key: &str) -> u64 {
        let variants = format!("{key}\n");
        self.purge_where(|k| k == key || k.starts_with(&variants))
    }

    /// Removes every entry whose key starts with `prefix`.
    pub fn purge_prefix(&self, prefix: &str) -> u64 {
        self.purge_where(|k| k.starts_with(prefix))
    }

    fn purge_where(&self, matches: impl Fn(&str) -> bool) -> u64 {
        let keys: Vec<Arc<String>> = self
            .slots
            .iter()
            .filter(|(k, v)| matches(k) && matches!(v, Slot::Object(_)))
            .map(|(k, _)| k)
            .collect();
        let markers: Vec<Arc<String>> = self
            .slots
            .iter()
            .filter(|(k, v)| matches(k) && matches!(v, Slot::Vary(..)))
            .map(|(k, _)| k)
            .collect();
        for k in keys.iter().chain(&markers) {
            self.slots.invalidate(k.as_str());
        }
        keys.len() as u64
    }

    /// Entries and bytes held, after pending evictions.
    pub fn size(&self) -> (u64, u64) {
        self.slots.run_pending_tasks();
        (self.slots.entry_count(), self.slots.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn head(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut h = ResponseHeader::build(200, None).unwrap();
        for (k, v) in headers {
            h.insert_header(k.to_string(), *v).unwrap();
        }
        h
    }

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn keys_and_vary_variants() {
        let c = ResponseCache::new(1 << 20, 1 << 16);
        let r = req("/a?x=1", &[]);
        assert_eq!(ResponseCache::key("h", &r, true, false), "h/a?x=1");
        assert_eq!(ResponseCache::key("h", &r, false, false), "h/a");

        let gz = req("/v", &[("accept-encoding", "gzip")]);
        let br = req("/v", &[("accept-encoding", "br")]);
        let vary = head(&[("vary", "Accept-Encoding")]);
        c.store("h/v", &gz, vary, Bytes::from_static(b"gzip"), TTL);
        assert_eq!(c.get("h/v", &gz).unwrap().body, "gzip");
        assert!(c.get("h/v", &br).is_none());
        c.store(
            "h/v",
            &br,
            head(&[("vary", "accept-encoding")]),
            "br".into(),
            TTL,
        );
        assert_eq!(c.get("h/v", &br).unwrap().body, "br");
        assert_eq!(c.get("h/v", &gz).unwrap().body, "gzip");
    }

    #[test]
    fn purge_by_key_and_prefix() {
        let c = ResponseCache::new(1 << 20, 1 << 16);
        let r = req("/", &[]);
        for k in ["h/a", "h/a/b", "h/b", "g/a"] {
            c.store(k, &r, head(&[]), "x".into(), TTL);
        }
        assert_eq!(c.purge("h/a"), 1);
        assert!(c.get("h/a", &r).is_none());
        assert!(c.get("h/a/b", &r).is_some());
        assert_eq!(c.purge_prefix("h/"), 2);
        assert!(c.get("g/a", &r).is_some());
    }

    #[test]
    fn bounded_by_bytes_and_object_size() {
        let c = ResponseCache::new(64 << 10, 8 << 10);
        let r = req("/", &[]);
        c.store("big", &r, head(&[]), vec![0u8; 9 << 10].into(), TTL);
        assert!(c.get("big", &r).is_none());
        for i in 0..100 {
            c.store(
                &format!("k{i}"),
                &r,
                head(&[]),
                vec![0u8; 4 << 10].into(),
                TTL,
            );
        }
        let (_, bytes) = c.size();
        assert!(bytes <= 64 << 10, "{bytes} bytes held");
    }

    #[test]
    fn entries_expire() {
        let c = ResponseCache::new(1 << 20, 1 << 16);
        let r = req("/", &[]);
        c.store("k", &r, head(&[]), "x".into(), Duration::from_millis(30));
        assert!(c.get("k", &r).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get("k", &r).is_none());
    }
}
