//! Bodies compressed once and kept: a static file, or a stored response,
//! in each coding a client asked for. A body is named by its identity (a
//! file's path and validator; a stored response's key and serial number),
//! so an entry outlives nothing it was made from: a changed file or a
//! replaced response has a new identity, and the old forms age out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use moka::sync::Cache;

use super::Encoding;

pub struct Store {
    kept: Cache<Arc<str>, Bytes>,
    pub stats: Stats,
}

/// Counters for /diagnostics.
#[derive(Default)]
pub struct Stats {
    /// Responses sent compressed, by coding (in [`Encoding::ALL`]'s order).
    pub responses: [AtomicU64; 3],
    /// Compressed forms served from the store.
    pub kept_hits: AtomicU64,
    /// Bodies compressed whole: once for the store, or per response.
    pub compressed_whole: AtomicU64,
    /// Streams that ended in a compressor error.
    pub errors: AtomicU64,
}

impl Store {
    pub fn new(max_bytes: u64) -> Store {
        Store {
            kept: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &Arc<str>, v: &Bytes| {
                    (k.len() + v.len() + 64).min(u32::MAX as usize) as u32
                })
                .build(),
            stats: Stats::default(),
        }
    }

    fn key(identity: &str, coding: Encoding) -> Arc<str> {
        format!("{}\n{identity}", coding.token()).into()
    }

    /// The body named `identity`, compressed, if it is kept.
    pub fn get(&self, identity: &str, coding: Encoding) -> Option<Bytes> {
        let got = self.kept.get(&Self::key(identity, coding));
        if got.is_some() {
            self.stats.kept_hits.fetch_add(1, Ordering::Relaxed);
        }
        got
    }

    pub fn keep(&self, identity: &str, coding: Encoding, compressed: Bytes) {
        self.kept.insert(Self::key(identity, coding), compressed);
    }

    pub fn counted(&self, coding: Encoding) {
        self.stats.responses[coding as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn figures(&self) -> serde_json::Value {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let by_coding: serde_json::Map<String, serde_json::Value> = Encoding::ALL
            .into_iter()
            .map(|c| {
                let n = load(&self.stats.responses[c as usize]);
                (c.token().to_string(), n.into())
            })
            .collect();
        self.kept.run_pending_tasks();
        serde_json::json!({
            "responses": by_coding,
            "kept_hits": load(&self.stats.kept_hits),
            "compressed_whole": load(&self.stats.compressed_whole),
            "errors": load(&self.stats.errors),
            "kept_entries": self.kept.entry_count(),
            "kept_bytes": self.kept.weighted_size(),
        })
    }
}
