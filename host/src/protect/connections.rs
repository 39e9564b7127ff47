//! Connections per client address: `[server] max_connections_per_ip`.
//!
//! Counted from the accept to the close, idle keep-alive time included, so
//! a client cannot hold more sockets by opening them and sending nothing.
//! A connection over the limit is closed at once, before a byte is read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use pingora_core::apps::ConnectionGate;
use pingora_core::protocols::l4::socket::SocketAddr;

use crate::Active;

/// Admits connections while their address holds fewer than the limit of
/// the active config, read at every accept, so a reload changes it.
pub struct PerAddress {
    active: Arc<ArcSwap<Active>>,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// Connections closed at the accept for their address's limit.
static REFUSED: AtomicU64 = AtomicU64::new(0);
/// When the last refusal was logged, in seconds since the Unix epoch.
static LAST_LOGGED: AtomicU64 = AtomicU64::new(0);

pub fn refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

impl PerAddress {
    pub fn new(active: Arc<ArcSwap<Active>>) -> Self {
        PerAddress {
            active,
            open: Arc::default(),
        }
    }
}

impl std::fmt::Debug for PerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PerAddress")
    }
}

/// Held for a counted connection's life.
struct Counted {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnectionGate for PerAddress {
    fn admit(&self, peer: Option<&SocketAddr>) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        let limit = self.active.load().config.client.max_connections_per_ip;
        let (Some(limit), Some(ip)) = (limit, peer.and_then(|p| p.as_inet()).map(|a| a.ip()))
        else {
            return Some(Box::new(()));
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= limit {
            drop(open);
            REFUSED.fetch_add(1, Ordering::Relaxed);
            log_refusal(ip, limit);
            return None;
        }
        *n += 1;
        Some(Box::new(Counted {
            ip,
            open: self.open.clone(),
        }))
    }
}

/// One line a second at most: a flood of refusals must not become a flood
/// of log lines. `/diagnostics` counts them all.
fn log_refusal(ip: IpAddr, limit: u32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST_LOGGED.swap(now, Ordering::Relaxed) != now {
        tracing::info!(
            event = "connection_refused",
            client = %ip,
            "connection refused: {ip} already has {limit} open (server.max_connections_per_ip)"
        );
    }
}
