//! A plugin version's warm instances: which instance a request gets back,
//! and which are dropped instead of pooled again.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use super::instance::Instance;
use super::stats::PluginStats;
use crate::config::{Isolation, PluginSettings};

pub struct Pool {
    warm: Mutex<Vec<Instance>>,
    /// `isolation = "request"`: nothing is ever pooled.
    pooled: bool,
    size: usize,
    max_uses: u64,
    max_growth_bytes: usize,
    stats: Arc<PluginStats>,
}

impl Pool {
    pub fn new(settings: &PluginSettings, stats: Arc<PluginStats>) -> Pool {
        let limits = &settings.limits;
        Pool {
            warm: Mutex::new(Vec::new()),
            pooled: settings.isolation == Isolation::Pooled,
            size: limits.pool_size,
            max_uses: limits.max_uses,
            max_growth_bytes: limits.max_growth_bytes,
            stats,
        }
    }

    /// A warm instance, if pooling is on and one is free.
    pub fn take(&self) -> Option<Instance> {
        if !self.pooled {
            return None;
        }
        self.warm.lock().pop()
    }

    /// Returns an instance after its request; broken, worn-out or
    /// per-request instances are dropped instead, and so are instances
    /// whose memory keeps growing: a garbage-collected guest (JavaScript)
    /// grows until its collector runs, and a collection over a heap grown by
    /// thousands of requests pauses a request for tens of milliseconds,
    /// where a fresh instance costs about one.
    pub fn give_back(&self, mut instance: Instance) {
        instance.uses += 1;
        if instance.broken || instance.uses >= self.max_uses {
            return;
        }
        let first = instance.uses == 1;
        let limiter = &mut instance.store().data_mut().limiter;
        if first {
            // What the first request allocated is the plugin setting up
            // (tables built on first use); growth counts from here.
            limiter.grown = 0;
        } else if limiter.grown >= self.max_growth_bytes {
            self.stats.instances_grown.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.keep(instance);
    }

    /// Pools a healthy instance, unless each request gets a fresh one or
    /// the pool is full.
    pub fn keep(&self, mut instance: Instance) {
        if !self.pooled {
            return;
        }
        let mut warm = self.warm.lock();
        if warm.len() < self.size {
            instance.store().data_mut().call.info = None;
            warm.push(instance);
        }
    }

    /// Warm instances waiting for a request.
    pub fn warm(&self) -> usize {
        self.warm.lock().len()
    }
}
