//! `kavro:plugin/kv`: a host-wide store, namespaced per plugin name, so its
//! data outlives instances and hot-swaps of the plugin. Entries may expire
//! (moka's per-entry expiry); a counter is incremented atomically under
//! moka's per-key compute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;
use pingora_core::services::background::background_service;
use pingora_core::services::ServiceWithDependents;
use wasmtime::component::Linker;

use super::{denied, view_of, CapCtx, Granting, HasView, HostView, Unit};
use crate::config::Config;
use crate::plugin::bindings::kavro::plugin::kv::{self as wit, Host};
use crate::plugin::bindings::types::HostError;

const MAX_KEY: usize = 1024;
const MAX_VALUE: usize = 1 << 20;
/// Entries in the whole store (counted as moka counts them, a little
/// behind the writes); a plugin that keeps adding keys gets an error, not
/// the host's memory, and no entry is evicted to make room.
const MAX_ENTRIES: u64 = 1_600_000;

pub struct Kv;

impl Unit for Kv {
    const NAME: &'static str = "kv";
    type Shared = Arc<KvStore>;
    /// The store, if granted.
    type View = Option<Arc<KvStore>>;

    fn shared(config: &Config) -> Arc<KvStore> {
        Arc::new(KvStore {
            fleet: crate::cluster::Cluster::of(config),
            ..KvStore::default()
        })
    }

    fn view(_: &Granting<'_>, store: &Arc<KvStore>) -> Self::View {
        Some(store.clone())
    }

    fn add_to_linker<T: HostView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasView<Kv>>(linker, view_of::<T, Kv>)
    }

    fn services(store: &Arc<KvStore>) -> Vec<Box<dyn ServiceWithDependents>> {
        vec![Box::new(background_service(
            "kavro-kv-sweep",
            Sweeper(store.clone()),
        ))]
    }
}

#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    ttl: Option<Duration>,
    /// An increment of an existing counter keeps the counter's expiry.
    keeps_expiry: bool,
}

struct EntryTtl;

impl moka::Expiry<Vec<u8>, Entry> for EntryTtl {
    fn expire_after_create(&self, _: &Vec<u8>, e: &Entry, _: Instant) -> Option<Duration> {
        e.ttl
    }
    fn expire_after_update(
        &self,
        _: &Vec<u8>,
        e: &Entry,
        _: Instant,
        left: Option<Duration>,
    ) -> Option<Duration> {
        if e.keeps_expiry {
            left
        } else {
            e.ttl
        }
    }
}

pub struct KvStore {
    entries: Cache<Vec<u8>, Entry>,
    /// In a `[cluster]`, the data lives in Redis instead, shared by every
    /// host; `entries` stays empty.
    pub fleet: Option<Arc<crate::cluster::Cluster>>,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KvStore")
    }
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore {
            entries: Cache::builder()
                // Far beyond the limit writes refuse at: only reached if
                // the count lagged by a million writes.
                .max_capacity(2 * MAX_ENTRIES)
                .expire_after(EntryTtl)
                .build(),
            fleet: None,
        }
    }
}

fn check_key(key: &str) -> Result<(), HostError> {
    if key.len() > MAX_KEY {
        return Err(HostError::Invalid(format!(
            "key longer than {MAX_KEY} bytes"
        )));
    }
    Ok(())
}

fn full_key(plugin: &str, key: &str) -> Result<Vec<u8>, HostError> {
    check_key(key)?;
    let mut k = Vec::with_capacity(plugin.len() + 1 + key.len());
    k.extend_from_slice(plugin.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    Ok(k)
}

fn check_value(value: &[u8]) -> Result<(), HostError> {
    if value.len() > MAX_VALUE {
        return Err(HostError::Invalid(format!(
            "value larger than {MAX_VALUE} bytes"
        )));
    }
    Ok(())
}

fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

fn full() -> HostError {
    HostError::Unavailable("the key-value store is full".into())
}

impl KvStore {
    fn has_room_for(&self, key: &[u8]) -> bool {
        self.entries.entry_count() < MAX_ENTRIES || self.entries.contains_key(key)
    }

    pub fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        let k = full_key(plugin, key)?;
        Ok(self.entries.get(&k).map(|e| e.value.to_vec()))
    }

    pub fn set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), HostError> {
        check_value(&value)?;
        let k = full_key(plugin, key)?;
        if !self.has_room_for(&k) {
            return Err(full());
        }
        let entry = Entry {
            value: value.into(),
            ttl: ttl(ttl_ms),
            keeps_expiry: false,
        };
        // Every write is a per-key compute, so that a set or a delete never
        // interleaves with an increment of the same key.
        self.entries.entry(k).and_compute_with(|_| Op::Put(entry));
        Ok(())
    }

    /// Whether a live entry was deleted.
    pub fn delete(&self, plugin: &str, key: &str) -> Result<bool, HostError> {
        let k = full_key(plugin, key)?;
        let result = self
            .entries
            .entry(k)
            .and_compute_with(|current| match current {
                Some(_) => Op::Remove,
                None => Op::Nop,
            });
        Ok(matches!(result, CompResult::Removed(_)))
    }

    pub fn increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, HostError> {
        let k = full_key(plugin, key)?;
        if !self.has_room_for(&k) {
            return Err(full());
        }
        let mut outcome = Err(HostError::Invalid("the counter was not updated".into()));
        self.entries.entry(k).and_compute_with(|current| {
            let (now, existed) = match current {
                Some(e) => match parse_counter(&e.value().value) {
                    Ok(n) => (n, true),
                    Err(e) => {
                        outcome = Err(e);
                        return Op::Nop;
                    }
                },
                None => (0, false),
            };
            let Some(next) = now.checked_add(delta) else {
                outcome = Err(HostError::Invalid("the counter would overflow".into()));
                return Op::Nop;
            };
            outcome = Ok(next);
            Op::Put(Entry {
                value: next.to_string().into_bytes().into(),
                ttl: ttl(ttl_ms),
                keeps_expiry: existed,
            })
        });
        outcome
    }

    /// One plugin's live entries, by key, for a report of what it wrote
    /// (`plugin try`); a scan of the whole store.
    pub fn entries_of(&self, plugin: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
        let mut prefix = plugin.as_bytes().to_vec();
        prefix.push(0);
        self.entries
            .iter()
            .filter_map(|(k, e)| {
                let key = k.strip_prefix(prefix.as_slice())?;
                Some((String::from_utf8_lossy(key).into_owned(), e.value.to_vec()))
            })
            .collect()
    }

    /// Drops expired entries now rather than at the next writes.
    pub fn sweep(&self) {
        self.entries.run_pending_tasks();
    }
}

/// How often expired entries are dropped; until then a read skips them.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Drops the store's expired entries every [`SWEEP_EVERY`], as a Pingora
/// background service, until the server shuts down.
pub struct Sweeper(pub Arc<KvStore>);

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for Sweeper {
    async fn start(&self, mut shutdown: pingora_core::server::ShutdownWatch) {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = every.tick() => self.0.sweep(),
            }
        }
    }
}

fn parse_counter(v: &[u8]) -> Result<i64, HostError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HostError::Invalid("the value is not a counter".to_string()))
}

impl CapCtx<'_, Option<Arc<KvStore>>> {
    fn store(&self) -> Result<&KvStore, HostError> {
        self.view.as_deref().ok_or_else(|| denied::<Kv>(self.call))
    }
}

impl Host for CapCtx<'_, Option<Arc<KvStore>>> {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, HostError> {
        let store = self.store()?;
        match &store.fleet {
            None => store.get(&self.call.plugin, &key),
            Some(fleet) => {
                check_key(&key)?;
                fleet
                    .kv_get(&self.call.plugin, &key, self.call.io_budget())
                    .await
            }
        }
    }
    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), HostError> {
        let store = self.store()?;
        match &store.fleet {
            None => store.set(&self.call.plugin, &key, value, ttl_ms),
            Some(fleet) => {
                check_key(&key)?;
                check_value(&value)?;
                let budget = self.call.io_budget();
                fleet
                    .kv_set(&self.call.plugin, &key, value, ttl_ms, budget)
                    .await
            }
        }
    }
    async fn delete(&mut self, key: String) -> Result<bool, HostError> {
        let store = self.store()?;
        match &store.fleet {
            None => store.delete(&self.call.plugin, &key),
            Some(fleet) => {
                check_key(&key)?;
                fleet
                    .kv_delete(&self.call.plugin, &key, self.call.io_budget())
                    .await
            }
        }
    }
    async fn increment(
        &mut self,
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, HostError> {
        let store = self.store()?;
        match &store.fleet {
            None => store.increment(&self.call.plugin, &key, delta, ttl_ms),
            Some(fleet) => {
                check_key(&key)?;
                let budget = self.call.io_budget();
                fleet
                    .kv_increment(&self.call.plugin, &key, delta, ttl_ms, budget)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{call, granting, is_denied, view};
    use super::super::Capability;
    use super::*;

    #[test]
    fn namespaced_counters_and_ttl() {
        let kv = KvStore::default();
        assert_eq!(kv.increment("a", "n", 2, None).unwrap(), 2);
        assert_eq!(kv.increment("a", "n", 3, None).unwrap(), 5);
        assert_eq!(kv.increment("b", "n", 1, None).unwrap(), 1);
        assert_eq!(kv.get("a", "n").unwrap(), Some(b"5".to_vec()));
        kv.set("a", "t", b"x".to_vec(), Some(0)).unwrap();
        assert_eq!(kv.get("a", "t").unwrap(), None);
        assert!(
            !kv.delete("a", "t").unwrap(),
            "an expired entry is not deleted"
        );
        kv.set("a", "s", b"text".to_vec(), None).unwrap();
        assert!(kv.increment("a", "s", 1, None).is_err());
        assert_eq!(kv.get("a", "s").unwrap(), Some(b"text".to_vec()));
        assert!(kv.delete("a", "n").unwrap());
        assert_eq!(kv.get("a", "n").unwrap(), None);
        assert!(kv.increment("a", "m", i64::MAX, None).is_ok());
        assert!(kv.increment("a", "m", 1, None).is_err());
    }

    #[test]
    fn deletes_and_sets_are_not_lost_to_concurrent_increments() {
        let kv = Arc::new(KvStore::default());
        std::thread::scope(|s| {
            for _ in 0..4 {
                let kv = kv.clone();
                s.spawn(move || {
                    for _ in 0..2_000 {
                        kv.increment("a", "n", 1, None).unwrap();
                    }
                });
            }
        });
        assert_eq!(kv.get("a", "n").unwrap(), Some(b"8000".to_vec()));
        assert!(kv.delete("a", "n").unwrap());
        assert_eq!(kv.get("a", "n").unwrap(), None);
    }

    #[test]
    fn an_increment_keeps_the_counter_expiry() {
        let kv = KvStore::default();
        kv.increment("a", "w", 1, Some(60)).unwrap();
        kv.increment("a", "w", 1, Some(60_000)).unwrap();
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(kv.get("a", "w").unwrap(), None);
    }

    #[test]
    fn limits() {
        let kv = KvStore::default();
        assert!(kv.get("a", &"k".repeat(MAX_KEY + 1)).is_err());
        assert!(kv.set("a", "big", vec![0; MAX_VALUE + 1], None).is_err());
    }

    #[tokio::test]
    async fn denied_unless_granted() {
        let mut call = call();
        let mut none = view::<Kv>(&granting(&[]));
        let mut denied = CapCtx {
            view: &mut none,
            call: &mut call,
        };
        assert!(is_denied(denied.get("k".into()).await));
        assert!(is_denied(denied.increment("k".into(), 1, None).await));
        let mut store = view::<Kv>(&granting(&[Capability::Kv]));
        let mut granted = CapCtx {
            view: &mut store,
            call: &mut call,
        };
        assert_eq!(granted.increment("k".into(), 1, None).await.unwrap(), 1);
    }
}
