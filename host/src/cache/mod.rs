//! The response cache: moka, bounded by bytes, one lifetime per entry,
//! Vary variants, purge by key or prefix, and request coalescing
//! (concurrent misses on one key wait for the first to fill it). An entry
//! is held past its freshness while it may still be revalidated or served
//! stale (RFC 9111 §4.2.4, §4.3; RFC 5861).
//!
//! Kavro keeps its own store on moka rather than `pingora-cache`:
//! pingora-cache runs inside pingora-proxy's proxy path and stores the
//! upstream's response before the response filters, while Kavro stores
//! what present made of it, with plugin-chosen keys and lifetimes, and
//! also responses Kavro produces itself (FastCGI, static files, plugin
//! replies), which never pass through that path. Revalidation and
//! background refresh still go through Pingora: a refresh is a Pingora
//! subrequest that runs the whole pipeline as a miss does.
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
use tokio::task::AbortHandle;

pub use policy::{Directive, Lifetime, RoutePolicy};

/// Numbers the entries stored, for their identities.
static NEXT_ENTRY: AtomicU64 = AtomicU64::new(0);

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
    pub lifetime: Lifetime,
    /// Unique to this entry: its compressed forms are kept under it.
    pub identity: Arc<str>,
}

impl Entry {
    pub fn fresh(&self, now: Instant) -> bool {
        now.duration_since(self.stored) < self.lifetime.fresh
    }

    /// How long past its freshness the entry is at `now`.
    fn staleness(&self, now: Instant) -> Duration {
        now.duration_since(self.stored)
            .saturating_sub(self.lifetime.fresh)
    }

    /// Whether the entry, stale, may be served while it is refreshed.
    pub fn within_stale_while_revalidate(&self, now: Instant) -> bool {
        self.staleness(now) < self.lifetime.stale_while_revalidate
    }

    /// Whether the entry, stale, may be served because the origin failed.
    pub fn within_stale_if_error(&self, now: Instant) -> bool {
        self.staleness(now) < self.lifetime.stale_if_error
    }

    /// The validators to send when revalidating: `If-None-Match` from the
    /// ETag, `If-Modified-Since` from Last-Modified (RFC 9111 §4.3.1).
    pub fn conditions(&self) -> impl Iterator<Item = (HeaderName, http::HeaderValue)> + '_ {
        let etag = self.head.headers.get(header::ETAG);
        let modified = self.head.headers.get(header::LAST_MODIFIED);
        (etag.map(|v| (header::IF_NONE_MATCH, v.clone())).into_iter())
            .chain(modified.map(|v| (header::IF_MODIFIED_SINCE, v.clone())))
    }

    /// Whether a 304 speaks of this entry (RFC 9111 §4.3.4): by its ETag
    /// (weak comparison) if it has one, else by its Last-Modified; one
    /// without validators speaks of the only entry there is.
    pub fn matches(&self, not_modified: &ResponseHeader) -> bool {
        let field = |h: &ResponseHeader, name| h.headers.get(name).cloned();
        if let Some(tag) = field(not_modified, header::ETAG) {
            return field(&self.head, header::ETAG)
                .is_some_and(|mine| opaque_tag(mine.as_bytes()) == opaque_tag(tag.as_bytes()));
        }
        if let Some(modified) = field(not_modified, header::LAST_MODIFIED) {
            return field(&self.head, header::LAST_MODIFIED) == Some(modified);
        }
        true
    }

    /// Whether a client's own conditional GET or HEAD is satisfied by this
    /// entry, so that a 304 answers it (RFC 9111 §4.3.2): `If-None-Match`
    /// against its ETag (weak comparison), else `If-Modified-Since`
    /// against its Last-Modified (RFC 9110 §13.1.1, §13.1.3).
    pub fn not_modified_for(&self, req: &RequestHeader) -> bool {
        // Only a success is answered 304 (RFC 9110 §13.2.1).
        if !self.head.status.is_success() {
            return false;
        }
        let mine = |name| self.head.headers.get(name).map(|v| v.as_bytes());
        if let Some(wanted) = req.headers.get(header::IF_NONE_MATCH) {
            let Ok(wanted) = wanted.to_str() else {
                return false;
            };
            if wanted.trim() == "*" {
                return true;
            }
            let Some(tag) = mine(header::ETAG) else {
                return false;
            };
            return wanted
                .split(',')
                .any(|t| opaque_tag(t.trim().as_bytes()) == opaque_tag(tag));
        }
        let date = |v: &[u8]| httpdate::parse_http_date(std::str::from_utf8(v).ok()?).ok();
        let since = req
            .headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| date(v.as_bytes()));
        let modified = mine(header::LAST_MODIFIED).and_then(date);
        matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
    }

    /// The entry updated by a 304 (RFC 9111 §3.2): its header fields
    /// replace the stored ones, apart from the body's framing.
    pub fn updated_head(&self, not_modified: &ResponseHeader) -> ResponseHeader {
        let mut head = self.head.clone();
        let framing = [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONTENT_ENCODING,
        ];
        let mut replaced: Vec<&HeaderName> = Vec::new();
        for (name, value) in &not_modified.headers {
            if framing.contains(name) {
                continue;
            }
            if !replaced.contains(&name) {
                head.remove_header(name);
                replaced.push(name);
            }
            let _ = head.append_header(name.clone(), value.clone());
        }
        head
    }

    /// Seconds since the entry was stored, for the `Age` header.
    pub fn age(&self) -> u64 {
        (self.initial_age + self.stored.elapsed()).as_secs()
    }
}

/// An entity tag without its weak marker, for the weak comparison.
fn opaque_tag(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
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
            Slot::Object(e) => e.lifetime.retained(),
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
    /// Stale entries revalidated: the origin answered 304, or 200.
    pub revalidated_304: AtomicU64,
    pub revalidated_200: AtomicU64,
    /// Stale entries served: while refreshed, or because the origin failed.
    pub stale_while_revalidate: AtomicU64,
    pub stale_if_error: AtomicU64,
    /// Entries removed by a request with an unsafe method (RFC 9111 §4.4).
    pub invalidations: AtomicU64,
}

/// A key being filled: waiters watch it; a background refresh can be
/// ended by a purge.
struct Filling {
    done: watch::Receiver<()>,
    refresh: Option<AbortHandle>,
    /// The key was purged while this fill was under way: what it fetched
    /// must not be stored.
    purged: bool,
}

type Locks = Arc<Mutex<HashMap<String, Filling>>>;

pub struct ResponseCache {
    slots: Cache<String, Slot>,
    locks: Locks,
    /// Largest body stored.
    pub max_object_bytes: usize,
    /// How long a miss waits for another request filling the same key.
    lock_wait: Duration,
    pub stats: CacheStats,
    /// The other hosts of a `[cluster]`, told of purges made here.
    pub fleet: Option<Arc<crate::cluster::Cluster>>,
}

/// What a lookup found.
pub enum Lookup {
    Hit(Arc<Entry>),
    /// Stale, within stale-while-revalidate: served as is. With a lock, no
    /// refresh was under way, and this request starts one.
    StaleWhileRevalidate(Arc<Entry>, Option<FillLock>),
    /// Nothing fresh. With a lock, this request fills the key and others
    /// wait for it; without, another request tried and its response was
    /// not stored. A stale entry, if held, is revalidated, and may answer
    /// in place of an origin that fails.
    Miss(Option<FillLock>, Option<Arc<Entry>>),
}

/// Held by the one request that fills a key; dropping it wakes the waiters.
pub struct FillLock {
    key: String,
    locks: Locks,
    _tx: watch::Sender<()>,
}

impl FillLock {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Tells this fill apart from a later one of the same key.
    pub fn watch(&self) -> watch::Receiver<()> {
        self._tx.subscribe()
    }

    /// Whether a purge or an invalidation of the key came while this fill
    /// was under way.
    pub fn purged(&self) -> bool {
        self.locks
            .lock()
            .get(&self.key)
            .is_some_and(|f| f.purged && f.done.same_channel(&self._tx.subscribe()))
    }
}

impl Drop for FillLock {
    fn drop(&mut self) {
        let mut locks = self.locks.lock();
        if locks
            .get(&self.key)
            .is_some_and(|f| f.done.same_channel(&self._tx.subscribe()))
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
            fleet: None,
        }
    }

    /// The default key: host, path, and the query unless left out.
    pub fn key(host: &str, req: &RequestHeader, with_query: bool, https: bool) -> String {
        let query = req.uri.query().filter(|_| with_query);
        Self::key_of(host, req.uri.path(), query, https)
    }

    pub fn key_of(host: &str, path: &str, query: Option<&str>, https: bool) -> String {
        // HTTPS is marked like a variant, so that a response that differs by
        // scheme (an origin's redirect to HTTPS) is never served to the
        // other, and a purge of `host/path` still removes both.
        let scheme = if https { "\nscheme=https" } else { "" };
        match query {
            Some(q) => format!("{host}{path}?{q}{scheme}"),
            None => format!("{host}{path}{scheme}"),
        }
    }

    /// Marks the fill of `key` as a background refresh that a purge ends,
    /// if that fill is still under way.
    pub fn refreshing(&self, key: &str, fill: &watch::Receiver<()>, task: AbortHandle) {
        if let Some(f) = self.locks.lock().get_mut(key) {
            if f.done.same_channel(fill) {
                f.refresh = Some(task);
            }
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

    /// The entry held for this request under `key`, Vary considered,
    /// fresh or not.
    pub fn find(&self, key: &str, req: &RequestHeader) -> Option<Arc<Entry>> {
        match self.slots.get(key)? {
            Slot::Object(e) => Some(e),
            Slot::Vary(names, _) => match self.slots.get(&Self::variant_key(key, &names, req))? {
                Slot::Object(e) => Some(e),
                Slot::Vary(..) => None,
            },
        }
    }

    /// The fresh entry for this request under `key`, Vary considered.
    pub fn get(&self, key: &str, req: &RequestHeader) -> Option<Arc<Entry>> {
        self.find(key, req).filter(|e| e.fresh(Instant::now()))
    }

    /// The fill lock of `key`, unless a request holds it.
    fn try_lock(&self, key: &str) -> Result<FillLock, watch::Receiver<()>> {
        let mut locks = self.locks.lock();
        if let Some(f) = locks.get(key) {
            return Err(f.done.clone());
        }
        let (tx, done) = watch::channel(());
        locks.insert(
            key.to_string(),
            Filling {
                done,
                refresh: None,
                purged: false,
            },
        );
        Ok(FillLock {
            key: key.to_string(),
            locks: self.locks.clone(),
            _tx: tx,
        })
    }

    /// Looks `key` up. A fresh entry is a hit; a stale one within
    /// stale-while-revalidate is served, and starts a refresh unless one is
    /// under way. Otherwise this request either takes the fill lock or
    /// waits for the request holding it and looks again.
    pub async fn lookup(&self, key: &str, req: &RequestHeader) -> Lookup {
        let held = self.find(key, req);
        if let Some(e) = held.as_ref() {
            let now = Instant::now();
            if e.fresh(now) {
                return Lookup::Hit(e.clone());
            }
            if e.within_stale_while_revalidate(now) {
                return Lookup::StaleWhileRevalidate(e.clone(), self.try_lock(key).ok());
            }
        }
        let mut rx = match self.try_lock(key) {
            Ok(lock) => return Lookup::Miss(Some(lock), held),
            Err(rx) => rx,
        };
        self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
        let waiting = Instant::now();
        // Wakes when the filler drops its lock, stored or not.
        let _ = tokio::time::timeout(self.lock_wait, rx.changed()).await;
        // An entry stored, or revalidated, while this request waited was
        // fetched after it arrived: it answers this request too, fresh or
        // not (collapsed requests, as for `no-cache`).
        match self.find(key, req) {
            Some(e) if e.fresh(Instant::now()) || e.stored >= waiting => Lookup::Hit(e),
            held => Lookup::Miss(None, held),
        }
    }

    /// Stores a response for `req` under `key`, and returns the entry.
    /// `head` must describe `body` exactly; per-request headers are
    /// removed here.
    pub fn store(
        &self,
        key: &str,
        req: &RequestHeader,
        mut head: ResponseHeader,
        body: Bytes,
        lifetime: Lifetime,
    ) -> Option<Arc<Entry>> {
        if body.len() > self.max_object_bytes {
            return None;
        }
        let initial_age = policy::initial_age(&head, std::time::SystemTime::now());
        // Counted in `initial_age`; an answer's `Age` is computed afresh,
        // and a 304 without one must not leave the old one behind.
        head.remove_header(&header::AGE);
        head.remove_header("x-request-id");
        head.remove_header("x-kavro-cache");
        head.remove_header(&header::TRANSFER_ENCODING);
        let _ = head.insert_header(header::CONTENT_LENGTH, body.len().to_string());
        let entry = Arc::new(Entry {
            head,
            body,
            stored: Instant::now(),
            initial_age,
            lifetime,
            identity: format!("stored\n{}", NEXT_ENTRY.fetch_add(1, Ordering::Relaxed)).into(),
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
            self.slots
                .insert(key.to_string(), Slot::Object(entry.clone()));
        } else {
            let variant = Self::variant_key(key, &names, req);
            // The marker outlives every variant it leads to.
            let held = match self.slots.get(key) {
                Some(Slot::Vary(_, longest)) => longest.max(lifetime.retained()),
                _ => lifetime.retained(),
            };
            self.slots
                .insert(key.to_string(), Slot::Vary(names.into(), held));
            self.slots.insert(variant, Slot::Object(entry.clone()));
        }
        self.stats.stores.fetch_add(1, Ordering::Relaxed);
        Some(entry)
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

    /// A purge asked for here (admin API, plugins): on this host and, in a
    /// `[cluster]`, on the others.
    pub fn purge_fleet(&self, key: &str, prefix: bool) -> u64 {
        if let Some(fleet) = &self.fleet {
            fleet.purge(key, prefix);
        }
        if prefix {
            self.purge_prefix(key)
        } else {
            self.purge(key)
        }
    }

    /// Removes what a request with an unsafe method changed (RFC 9111 §4.4).
    pub fn invalidate(&self, key: &str) -> u64 {
        let n = self.purge(key);
        self.stats.invalidations.fetch_add(n, Ordering::Relaxed);
        n
    }

    fn purge_where(&self, matches: impl Fn(&str) -> bool) -> u64 {
        // A fill under way would store the purged response again: it is
        // marked, and a background refresh ended (outside the lock, which
        // its fill lock takes when it drops).
        let mut refreshes: Vec<AbortHandle> = Vec::new();
        for (key, filling) in self.locks.lock().iter_mut() {
            if matches(key) {
                filling.purged = true;
                refreshes.extend(filling.refresh.clone());
            }
        }
        for task in refreshes {
            task.abort();
        }
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

    const fn fresh_for(fresh: Duration) -> Lifetime {
        Lifetime {
            fresh,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            keep: Duration::ZERO,
        }
    }

    const TTL: Lifetime = fresh_for(Duration::from_secs(60));

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
        c.store(
            "k",
            &r,
            head(&[]),
            "x".into(),
            fresh_for(Duration::from_millis(30)),
        );
        assert!(c.get("k", &r).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get("k", &r).is_none());
    }

    /// RFC 9111 §4.3.4: a 304 is merged only into the entry it speaks of.
    #[test]
    fn rfc9111_4_3_4_a_304_matches_by_its_validators() {
        let c = ResponseCache::new(1 << 20, 1 << 16);
        let r = req("/", &[]);
        let stored = head(&[
            ("etag", "\"v1\""),
            ("x-old", "1"),
            ("cache-control", "max-age=1"),
            ("age", "5"),
        ]);
        c.store("k", &r, stored, "body".into(), TTL);
        let e = c.find("k", &r).unwrap();
        let not_modified = |h: &[(&str, &str)]| {
            let mut n = ResponseHeader::build(304, None).unwrap();
            for (k, v) in h {
                n.append_header(k.to_string(), *v).unwrap();
            }
            n
        };
        assert!(e.matches(&not_modified(&[("etag", "W/\"v1\"")])));
        assert!(!e.matches(&not_modified(&[("etag", "\"v2\"")])));
        assert!(e.matches(&not_modified(&[])));
        assert!(!e.matches(&not_modified(&[(
            "last-modified",
            "Tue, 01 Dec 2026 10:00:00 GMT"
        )])));
        let merged = e.updated_head(&not_modified(&[
            ("cache-control", "max-age=60"),
            ("content-length", "0"),
        ]));
        assert_eq!(merged.status, 200);
        assert_eq!(merged.headers["cache-control"], "max-age=60");
        assert_eq!(merged.headers["content-length"], "4");
        assert_eq!(merged.headers["x-old"], "1");
        let conditions: Vec<_> = e.conditions().map(|(k, _)| k).collect();
        assert_eq!(conditions, [header::IF_NONE_MATCH]);
        assert!(e.not_modified_for(&req("/", &[("if-none-match", "W/\"v1\"")])));
        assert!(
            !e.head.headers.contains_key("age"),
            "counted in the entry's age"
        );
        assert!(e.age() >= 5);
        let mut gone = head(&[("etag", "\"g\"")]);
        gone.set_status(404).unwrap();
        c.store("g", &r, gone, "".into(), TTL);
        let g = c.find("g", &r).unwrap();
        assert!(
            !g.not_modified_for(&req("/", &[("if-none-match", "\"g\"")])),
            "only a success is answered 304"
        );
        c.store("n", &r, head(&[]), "".into(), TTL);
        let n = c.find("n", &r).unwrap();
        assert!(n.not_modified_for(&req("/", &[("if-none-match", "*")])));
        assert!(!e.not_modified_for(&req("/", &[("if-none-match", "\"v2\"")])));
        assert!(!e.not_modified_for(&req("/", &[])));
    }

    /// A purge while a fill is under way keeps what it fetched out.
    #[test]
    fn a_purge_marks_fills_under_way() {
        let c = ResponseCache::new(1 << 20, 1 << 16);
        let lock = c.try_lock("h/p").ok().unwrap();
        assert!(!lock.purged());
        c.purge("h/p");
        assert!(lock.purged());
        drop(lock);
        let again = c.try_lock("h/p").ok().unwrap();
        assert!(!again.purged(), "a later fill starts clean");
    }
}
