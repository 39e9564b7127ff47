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
use tokio::sync::mpsc;

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
    /// Events for the other hosts, sent in order by [`Cluster::watch`].
    outbox: mpsc::Sender<String>,
    outbox_rx: Mutex<Option<mpsc::Receiver<String>>>,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub failures: AtomicU64,
}

/// Events waiting to be sent beyond which new ones are dropped (counted as
/// failures): a slow Redis must not hold the host's memory.
const OUTBOX: usize = 4096;
/// How often the watcher checks that Redis still answers.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

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
        let shown = format!("redis://{}", client.get_connection_info().addr);
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
        Some(Cluster {
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
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
    fn send(&self, event: Event) {
        if !self.is_up() {
            return;
        }
        let envelope = Envelope {
            from: self.node.clone(),
            event,
        };
        let Ok(payload) = serde_json::to_string(&envelope) else {
            return;
        };
        if self.outbox.try_send(payload).is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends the outbox's events in order, one at a time.
    async fn send_events(&self, mut outbox: mpsc::Receiver<String>) {
        while let Some(payload) = outbox.recv().await {
            let channel = self.channel();
            let sent = self
                .call(CALL_TIMEOUT, |mut c| async move {
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(payload)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
            if sent.is_ok() {
                self.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A realtime message this host delivered, for the others' clients.
    pub fn publish(&self, to: &[String], message: &str) {
        self.send(Event::Publish {
            to: to.to_vec(),
            message: message.to_string(),
        });
    }

    /// A cache purge this host made, for the others' caches.
    pub fn purge(&self, key: &str, prefix: bool) {
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
    /// events, and sends this host's: on a lost connection, or a Redis
    /// that stops answering, marks the host degraded and tries again,
    /// with backoff, until Redis answers.
    pub async fn watch(self: Arc<Self>, hub: Arc<Hub>, cache: Arc<ResponseCache>) {
        if let Some(outbox) = self.outbox_rx.lock().take() {
            let me = self.clone();
            tokio::spawn(async move { me.send_events(outbox).await });
        }
        let mut wait = RETRY_FIRST;
        loop {
            let Err(e) = self.subscribe_and_listen(&hub, &cache, &mut wait).await;
            self.set_up(false, Some(e.to_string()));
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// Returns only with why it stopped: the subscription ended, or Redis
    /// stopped answering the health check.
    async fn subscribe_and_listen(
        &self,
        hub: &Hub,
        cache: &ResponseCache,
        wait: &mut Duration,
    ) -> Result<std::convert::Infallible, redis::RedisError> {
        let timed_out = || redis::RedisError::from((redis::ErrorKind::IoError, "timed out"));
        let limit = CALL_TIMEOUT * 2;
        let mut pubsub = tokio::time::timeout(limit, self.client.get_async_pubsub())
            .await
            .map_err(|_| timed_out())??;
        tokio::time::timeout(limit, pubsub.subscribe(self.channel()))
            .await
            .map_err(|_| timed_out())??;
        if self.conn.load().is_none() {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(CALL_TIMEOUT)
                .set_response_timeout(CALL_TIMEOUT)
                .set_number_of_retries(1);
            let made = self.client.get_connection_manager_with_config(config);
            let conn = tokio::time::timeout(limit, made)
                .await
                .map_err(|_| timed_out())??;
            self.conn.store(Some(Arc::new(conn)));
        }
        self.health().await?;
        *wait = RETRY_FIRST;
        let mut messages = pubsub.on_message();
        let mut health = tokio::time::interval(HEALTH_EVERY);
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        return Err(redis::RedisError::from((
                            redis::ErrorKind::IoError,
                            "the subscription ended",
                        )));
                    };
                    self.apply(hub, cache, msg.get_payload_bytes());
                }
                // A call that failed may have marked the host degraded while
                // the subscription held: Redis answering again brings it back.
                _ = health.tick() => self.health().await?,
            }
        }
    }

    /// PING through the calls' connection; up if it answers.
    async fn health(&self) -> redis::RedisResult<()> {
        let Some(conn) = self.conn.load_full() else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "no connection",
            )));
        };
        let mut conn = (*conn).clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(CALL_TIMEOUT, ping).await {
            Ok(Ok(_)) => {
                self.set_up(true, None);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "no answer to PING within a second",
            ))),
        }
    }

    /// Applies another host's event here.
    fn apply(&self, hub: &Hub, cache: &ResponseCache, payload: &[u8]) {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(payload) else {
            return;
        };
        if envelope.from == self.node {
            return;
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
