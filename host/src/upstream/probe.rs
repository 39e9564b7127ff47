//! Active health checks: every `interval` each target of an upstream with
//! `check` is sent the check request on a connection of its own; `fall`
//! failures in a row take it out of rotation and `rise` passes bring it
//! back (`Target::probed`). The upstreams checked are those of the config
//! in use, so a reload starts, changes or stops the checks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use pingora_load_balancing::health_check::HealthCheck;

use crate::Active;

/// How often the prober looks for checks that are due.
const TICK: Duration = Duration::from_millis(100);

pub struct Prober {
    pub active: Arc<ArcSwap<Active>>,
}

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for Prober {
    async fn start(&self, mut shutdown: pingora_core::server::ShutdownWatch) {
        // When each (upstream, target) is next due, and those under way.
        let mut due: HashMap<(String, String), Instant> = HashMap::new();
        let running: Arc<parking_lot::Mutex<HashSet<(String, String)>>> = Default::default();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            let active = self.active.load_full();
            let now = Instant::now();
            let mut seen = HashSet::new();
            for up in active.services.upstreams.values() {
                let Some(check) = &up.check else {
                    up.targets().for_each(|t| t.unprobed());
                    continue;
                };
                for (target, _, _) in up.probes() {
                    let key = (up.name.clone(), target.target.clone());
                    seen.insert(key.clone());
                    if due.get(&key).is_some_and(|at| now < *at) || running.lock().contains(&key) {
                        continue;
                    }
                    due.insert(key.clone(), now + check.interval);
                    running.lock().insert(key.clone());
                    let (up, running) = (up.clone(), running.clone());
                    tokio::spawn(async move {
                        probe_once(&up, &key.1).await;
                        running.lock().remove(&key);
                    });
                }
            }
            due.retain(|k, _| seen.contains(k));
        }
    }
}

/// Sends one check to `target` of `up` and counts its outcome.
async fn probe_once(up: &super::Upstream, target: &str) {
    let Some(check) = &up.check else { return };
    let Some((t, probe, backend)) = up.probes().find(|(t, _, _)| t.target == target) else {
        return;
    };
    // The connect and read timeouts are the check's; this bounds the whole.
    let outcome = tokio::time::timeout(check.timeout * 2, probe.check(&backend)).await;
    match outcome {
        Ok(Ok(())) => t.probed(true, check.fall, check.rise, ""),
        Ok(Err(e)) => {
            // Pingora's error reads "TYPE context: WHAT"; the what says most.
            let why = e
                .context
                .as_ref()
                .map_or_else(|| e.to_string(), |c| c.to_string());
            t.probed(false, check.fall, check.rise, why.trim())
        }
        Err(_) => t.probed(false, check.fall, check.rise, "the check timed out"),
    }
}
