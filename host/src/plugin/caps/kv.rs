//! `kavro:plugin/kv`: a host-wide store, namespaced per plugin name, so its
//! data outlives instances and hot-swaps of the plugin. Entries may expire;
//! expiry is checked on access and swept periodically.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::denied;
use crate::plugin::bindings::kavro::plugin::kv::Host;
use crate::plugin::bindings::types::HostError;
use crate::plugin::state::HostState;

const SHARDS: usize = 16;
const MAX_KEY: usize = 1024;
const MAX_VALUE: usize = 1 << 20;
/// Entries per shard; a plugin that keeps adding keys gets an error, not the host's memory.
const MAX_ENTRIES_PER_SHARD: usize = 100_000;

struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

pub struct KvStore {
    shards: Vec<Mutex<HashMap<Vec<u8>, Entry>>>,
    hasher: RandomState,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KvStore")
    }
}

impl Default for KvStore {
    fn default() -> Self {
        KvStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

fn full_key(plugin: &str, key: &str) -> Result<Vec<u8>, HostError> {
    if key.len() > MAX_KEY {
        return Err(HostError::Invalid(format!(
            "key longer than {MAX_KEY} bytes"
        )));
    }
    let mut k = Vec::with_capacity(plugin.len() + 1 + key.len());
    k.extend_from_slice(plugin.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    Ok(k)
}

fn expiry(ttl_ms: Option<u64>) -> Option<Instant> {
    ttl_ms.map(|ms| Instant::now() + Duration::from_millis(ms))
}

impl KvStore {
    fn shard(&self, key: &[u8]) -> &Mutex<HashMap<Vec<u8>, Entry>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    pub fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        let k = full_key(plugin, key)?;
        let now = Instant::now();
        let shard = self.shard(&k).lock();
        Ok(shard
            .get(&k)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone()))
    }

    pub fn set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), HostError> {
        if value.len() > MAX_VALUE {
            return Err(HostError::Invalid(format!(
                "value larger than {MAX_VALUE} bytes"
            )));
        }
        let k = full_key(plugin, key)?;
        let mut shard = self.shard(&k).lock();
        if shard.len() >= MAX_ENTRIES_PER_SHARD && !shard.contains_key(&k) {
            return Err(HostError::Unavailable("the key-value store is full".into()));
        }
        shard.insert(
            k,
            Entry {
                value,
                expires: expiry(ttl_ms),
            },
        );
        Ok(())
    }

    pub fn delete(&self, plugin: &str, key: &str) -> Result<bool, HostError> {
        let k = full_key(plugin, key)?;
        let now = Instant::now();
        Ok(self
            .shard(&k)
            .lock()
            .remove(&k)
            .is_some_and(|e| e.live(now)))
    }

    pub fn increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, HostError> {
        let k = full_key(plugin, key)?;
        let now = Instant::now();
        let mut shard = self.shard(&k).lock();
        let current = match shard.get(&k) {
            Some(e) if e.live(now) => Some(parse_counter(&e.value)?),
            _ => None,
        };
        let next = current
            .unwrap_or(0)
            .checked_add(delta)
            .ok_or_else(|| HostError::Invalid("the counter would overflow".to_string()))?;
        match shard.get_mut(&k) {
            Some(e) if current.is_some() => e.value = next.to_string().into_bytes(),
            _ => {
                if shard.len() >= MAX_ENTRIES_PER_SHARD && !shard.contains_key(&k) {
                    return Err(HostError::Unavailable("the key-value store is full".into()));
                }
                shard.insert(
                    k,
                    Entry {
                        value: next.to_string().into_bytes(),
                        expires: expiry(ttl_ms),
                    },
                );
            }
        }
        Ok(next)
    }

    /// Drops expired entries; run periodically.
    pub fn sweep(&self) {
        let now = Instant::now();
        for shard in &self.shards {
            shard.lock().retain(|_, e| e.live(now));
        }
    }
}

/// How often expired entries are dropped; until then a read skips them.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Drops the store's expired entries every [`SWEEP_EVERY`], as a Pingora
/// background service, until the server shuts down.
pub struct Sweeper(pub std::sync::Arc<KvStore>);

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

impl HostState {
    fn kv(&self) -> Result<&KvStore, HostError> {
        self.grants
            .kv
            .as_deref()
            .ok_or_else(|| denied(&self.grants.plugin, "kv"))
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, HostError> {
        self.kv()?.get(&self.grants.plugin, &key)
    }
    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<(), HostError> {
        self.kv()?.set(&self.grants.plugin, &key, value, ttl_ms)
    }
    fn delete(&mut self, key: String) -> Result<bool, HostError> {
        self.kv()?.delete(&self.grants.plugin, &key)
    }
    fn increment(
        &mut self,
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, HostError> {
        self.kv()?
            .increment(&self.grants.plugin, &key, delta, ttl_ms)
    }
}

#[cfg(test)]
mod tests {
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
        kv.set("a", "s", b"text".to_vec(), None).unwrap();
        assert!(kv.increment("a", "s", 1, None).is_err());
        assert!(kv.delete("a", "n").unwrap());
        assert_eq!(kv.get("a", "n").unwrap(), None);
    }
}
