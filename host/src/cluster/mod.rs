//! A fleet of kavro-hosts that behaves as one, through Redis (`[cluster]
//! redis`): the kv capability's data, realtime publishes and cache purges
//! are shared. The request path stays local.
//!
//! When Redis cannot be reached the host keeps serving, degraded: KV calls
//! return `unavailable` (the plugin's failure policy decides), publishes and
//! purges apply to this host only. `/status` and `/diagnostics` say so, and
//! the connection comes back by itself.

pub mod kv;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::cache::ResponseCache;
use crate::config::ClusterSettings;
use crate::realtime::Hub;

/// How long a Redis call may take before it counts as a failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// Waits between attempts to reach Redis again, doubling up to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// What one host tells the others.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Event {
    /// A realtime message to groups and client ids.
    Publish { to: Vec<String>, message: String },
    /// A cache purge: one key (with its variants), or a prefix.
    Purge { key: String, prefix: bool },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The sending host: it has applied the event already.
    from: String,
    #[serde(flatten)]
    event: Event,
}

pub struct Cluster {
    /// The URL without its password, for messages.
    pub shown_url: String,
    prefix: String,
    client: redis::Client,
    conn: ArcSwapOption<ConnectionManager>,
    /// This host's name among the fleet's, for its own events.
    node: String,
    up: AtomicBool,
    /// Why Redis was last unreachable, and since when the state holds.
    state: Mutex<(Option<String>, SystemTime)>,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub failures: AtomicU64,
}

/// The process's one cluster handle, made from the config at start: the
/// KV store, the hub and the cache share it.
static FLEET: OnceLock<Option<Arc<Cluster>>> = OnceLock::new();

impl Cluster {
    /// The cluster of the config the process started with, if it has one.
    pub fn of(config: &crate::config::Config) -> Option<Arc<Cluster>> {
        FLEET
            .get_or_init(|| config.cluster.as_ref().and_then(Cluster::new).map(Arc::new))
            .clone()
    }

    fn new(settings: &ClusterSettings) -> Option<Cluster> {
        // The URL was checked by validation.
        let client = redis::Client::open(settings.redis.as_str()).ok()?;
        let mut shown = client.get_connection_info().addr.to_string();
        shown.insert_str(0, "redis://");
        Some(Cluster {
            shown_url: shown,
            prefix: settings.prefix.clone(),
            client,
            conn: ArcSwapOption::empty(),
            node: uuid::Uuid::new_v4().simple().to_string(),
            up: AtomicBool::new(false),
            state: Mutex::new((Some("not connected yet".into()), SystemTime::now())),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set_up(&self, up: bool, why: Option<String>) {
        let was = self.up.swap(up, Ordering::Relaxed);
        let mut state = self.state.lock();
        if was != up {
            state.1 = SystemTime::now();
            if up {
                tracing::info!(event = "cluster_up", redis = %self.shown_url, "redis reached: state is shared again");
            } else {
                tracing::warn!(
                    event = "cluster_down",
                    redis = %self.shown_url,
                    "redis unreachable ({}): serving degraded, KV calls unavailable, publishes and purges local",
                    why.as_deref().unwrap_or("unknown")
                );
            }
        }
        if why.is_some() || up {
            state.0 = why;
        }
    }

    /// A connection for a call, or why there is none.
    fn connection(&self) -> Result<ConnectionManager, String> {
        if !self.is_up() {
            let why = self.state.lock().0.clone();
            return Err(format!(
                "the cluster's redis ({}) is unreachable: {}",
                self.shown_url,
                why.unwrap_or_else(|| "unknown".into())
            ));
        }
        self.conn.load_full().map(|c| (*c).clone()).ok_or_else(|| {
            format!(
                "the cluster's redis ({}) is not connected yet",
                self.shown_url
            )
        })
    }

    /// Runs one Redis call within `budget` (at most [`CALL_TIMEOUT`]); a
    /// failure to reach Redis turns the host degraded until the watcher
    /// reaches it again.
    pub async fn call<T, F, Fut>(&self, budget: Duration, f: F) -> Result<T, CallError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().map_err(CallError::Unavailable)?;
        match tokio::time::timeout(budget.min(CALL_TIMEOUT), f(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e))
                if e.kind() == redis::ErrorKind::ResponseError
                    || e.kind() == redis::ErrorKind::ExtensionError =>
            {
                Err(CallError::Refused(e.to_string()))
            }
            Ok(Err(e)) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                    self.set_up(false, Some(e.to_string()));
                }
                Err(CallError::Unavailable(format!(
                    "the cluster's redis ({}): {e}",
                    self.shown_url
                )))
            }
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(CallError::Unavailable(format!(
                    "the cluster's redis ({}) did not answer within {} ms",
                    self.shown_url,
                    budget.min(CALL_TIMEOUT).as_millis()
                )))
            }
        }
    }

    fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Tells the other hosts; while Redis is unreachable, the event stays
    /// with this host.
    fn send(self: &Arc<Self>, event: Event) {
        if !self.is_up() {
            return;
        }
        let payload = match serde_json::to_string(&Envelope {
            from: self.node.clone(),
            event,
        }) {
            Ok(p) => p,
            Err(_) => return,
        };
        let me = self.clone();
        tokio::spawn(async move {
            let channel = me.channel();
            let sent = me
                .call(CALL_TIMEOUT, |mut c| async move {
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(payload)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
            if sent.is_ok() {
                me.sent.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// A realtime message this host delivered, for the others' clients.
    pub fn publish(self: &Arc<Self>, to: &[String], message: &str) {
        self.send(Event::Publish {
            to: to.to_vec(),
            message: message.to_string(),
        });
    }

    /// A cache purge this host made, for the others' caches.
    pub fn purge(self: &Arc<Self>, key: &str, prefix: bool) {
        self.send(Event::Purge {
            key: key.to_string(),
            prefix,
        });
    }

    pub fn report(&self) -> serde_json::Value {
        let state = self.state.lock();
        let since = state
            .1
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "redis": self.shown_url,
            "state": if self.is_up() { "up" } else { "degraded" },
            "since_unix": since,
            "last_error": state.0,
            "events_sent": n(&self.sent),
            "events_received": n(&self.received),
            "failures": n(&self.failures),
        })
    }

    /// Keeps the connection and the subscription to the other hosts'
    /// events: on a lost connection, marks the host degraded and tries
    /// again, with backoff, until Redis answers.
    pub async fn watch(self: Arc<Self>, hub: Arc<Hub>, cache: Arc<ResponseCache>) {
        let mut wait = RETRY_FIRST;
        loop {
            match self.subscribe_and_listen(&hub, &cache).await {
                Ok(()) => wait = RETRY_FIRST,
                Err(e) => {
                    self.set_up(false, Some(e.to_string()));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }

    async fn subscribe_and_listen(
        &self,
        hub: &Hub,
        cache: &ResponseCache,
    ) -> redis::RedisResult<()> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.channel()).await?;
        if self.conn.load().is_none() {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(CALL_TIMEOUT)
                .set_response_timeout(CALL_TIMEOUT)
                .set_number_of_retries(1);
            let conn = self
                .client
                .get_connection_manager_with_config(config)
                .await?;
            self.conn.store(Some(Arc::new(conn)));
        }
        // The manager's own connection may be the one that failed: check it.
        let mut conn = self
            .conn
            .load_full()
            .map(|c| (*c).clone())
            .expect("stored above");
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        self.set_up(true, None);
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Ok(envelope) = serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) else {
                continue;
            };
            if envelope.from == self.node {
                continue;
            }
            self.received.fetch_add(1, Ordering::Relaxed);
            match envelope.event {
                Event::Publish { to, message } => {
                    hub.deliver_here(&to, &message);
                }
                Event::Purge { key, prefix: false } => {
                    cache.purge(&key);
                }
                Event::Purge { key, prefix: true } => {
                    cache.purge_prefix(&key);
                }
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::IoError,
            "the subscription ended",
        )))
    }
}

/// A Redis call that did not give a result.
#[derive(Debug)]
pub enum CallError {
    /// Redis cannot be reached, or did not answer in time.
    Unavailable(String),
    /// Redis answered with an error (a wrong type, an overflow).
    Refused(String),
}

/// Runs [`Cluster::watch`] as a Pingora background service, until the
/// server shuts down.
pub struct FleetWatch {
    pub cluster: Arc<Cluster>,
    pub hub: Arc<Hub>,
    pub cache: Arc<ResponseCache>,
}

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for FleetWatch {
    async fn start(&self, mut shutdown: pingora_core::server::ShutdownWatch) {
        let watch = self
            .cluster
            .clone()
            .watch(self.hub.clone(), self.cache.clone());
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = watch => {}
        }
    }
}
