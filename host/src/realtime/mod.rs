//! The realtime hub: Kavro holds the WebSocket connections and the group
//! memberships; the application behind it stays HTTP-only. On a client's
//! open, each text message and its close, the hub POSTs to the route's
//! backend (`connection`), and the backend's JSON answer says what to do
//! (`protocol`): `+` groups to join, `-` groups to leave, `@` groups to
//! send to, and the rest of the object is the message. The application
//! publishes the same JSON with `POST /publish` (`publish`).
//!
//! Every client is the only member of the group named by its id, so a
//! message can go to one client. Groups a client joins are named with a
//! leading `/` (`/rooms/7`), which no id has.

pub mod connection;
pub mod protocol;
pub mod publish;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::upstream::Upstream;
use protocol::Answer;

/// A realtime route as built: where its events go.
#[derive(Debug)]
pub struct RealtimeRoute {
    pub backend: Arc<Upstream>,
    pub path_on_backend: String,
    pub max_message_bytes: usize,
}

/// Messages queued for one client beyond this close it as too slow (1008):
/// a client that does not read must not hold the hub's memory.
pub const CLIENT_QUEUE: usize = 1024;

/// A client's id: 16 hex digits, never starting with `/`.
pub type ClientId = Arc<str>;

/// The hub's connections and groups, for the whole process: it outlives
/// config and plugin swaps, as its connections do.
pub struct Hub {
    state: RwLock<State>,
    /// The other hosts of a `[cluster]`, told of group messages sent here.
    fleet: Option<Arc<crate::cluster::Cluster>>,
    /// Calls to the routes' backends.
    pub client: crate::upstream::client::Client,
    pub stats: Stats,
}

#[derive(Default)]
struct State {
    clients: HashMap<ClientId, Client>,
    /// Named groups (`/...`) and their members; an empty group is removed.
    groups: HashMap<String, HashSet<ClientId>>,
}

struct Client {
    queue: mpsc::Sender<Arc<str>>,
    groups: HashSet<String>,
}

/// What `/diagnostics` shows of the hub.
#[derive(Default)]
pub struct Stats {
    /// Connections opened since start.
    pub opened: AtomicU64,
    /// Opens the backend refused (its non-2xx answer went to the client).
    pub refused: AtomicU64,
    /// Text messages received from clients.
    pub messages: AtomicU64,
    /// Messages queued to clients.
    pub deliveries: AtomicU64,
    /// Accepted `POST /publish` requests.
    pub published: AtomicU64,
    /// Backend calls that failed or answered with an error or non-JSON.
    pub backend_errors: AtomicU64,
    /// Clients closed because they did not read their messages.
    pub slow_clients: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(None)
    }
}

impl Hub {
    pub fn new(fleet: Option<Arc<crate::cluster::Cluster>>) -> Hub {
        Hub {
            fleet,
            state: RwLock::default(),
            client: crate::upstream::client::client(),
            stats: Stats::default(),
        }
    }

    /// An id for a new client: 64 random bits, as 16 hex digits.
    pub fn new_id(&self) -> ClientId {
        let id = uuid::Uuid::new_v4().simple().to_string();
        id[..16].into()
    }

    /// Connects client `id`; messages for it arrive on the receiver.
    pub fn register(&self, id: ClientId) -> mpsc::Receiver<Arc<str>> {
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let client = Client {
            queue: tx,
            groups: HashSet::new(),
        };
        self.state.write().clients.insert(id, client);
        self.stats.opened.fetch_add(1, Ordering::Relaxed);
        rx
    }

    /// Removes a client and its memberships.
    pub fn unregister(&self, id: &str) {
        let mut state = self.state.write();
        state.remove(id);
    }

    /// Applies a backend's answer to an event of client `from` (`None`:
    /// a publish): memberships first, then the message, to the `@` groups
    /// or, without them, back to `from`. Returns the deliveries.
    pub fn apply(&self, from: Option<&str>, answer: &Answer) -> usize {
        if let Some(from) = from {
            if !answer.join.is_empty() || !answer.leave.is_empty() {
                let mut state = self.state.write();
                for group in &answer.join {
                    state.join(from, group);
                }
                for group in &answer.leave {
                    state.leave(from, group);
                }
            }
        }
        let Some(message) = &answer.message else {
            return 0;
        };
        match (&answer.to, from) {
            (Some(to), _) => self.deliver(to, message),
            (None, Some(from)) => self.deliver_here(&[from.to_string()], message),
            (None, None) => 0,
        }
    }

    /// Queues `message` once to every client in `targets` (groups and
    /// client ids) on this host, and, in a `[cluster]`, has the other
    /// hosts deliver it to theirs. Returns the clients reached here.
    pub fn deliver(&self, targets: &[String], message: &str) -> usize {
        if let Some(fleet) = &self.fleet {
            fleet.publish(targets, message);
        }
        self.deliver_here(targets, message)
    }

    /// Queues `message` once to every client in `targets` on this host. A
    /// client whose queue is full is dropped from the hub: its connection
    /// then closes with 1008.
    pub fn deliver_here(&self, targets: &[String], message: &str) -> usize {
        let message: Arc<str> = message.into();
        let mut slow = Vec::new();
        let mut sent = 0;
        {
            let state = self.state.read();
            let mut recipients: HashSet<&ClientId> = HashSet::new();
            for target in targets {
                if target.starts_with('/') {
                    recipients.extend(state.groups.get(target).into_iter().flatten());
                } else if let Some((id, _)) = state.clients.get_key_value(target.as_str()) {
                    recipients.insert(id);
                }
            }
            for id in recipients {
                let Some(client) = state.clients.get(id) else {
                    continue;
                };
                match client.queue.try_send(message.clone()) {
                    Ok(()) => sent += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => slow.push(id.clone()),
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        if !slow.is_empty() {
            let mut state = self.state.write();
            for id in &slow {
                state.remove(id);
            }
            self.stats
                .slow_clients
                .fetch_add(slow.len() as u64, Ordering::Relaxed);
        }
        self.stats
            .deliveries
            .fetch_add(sent as u64, Ordering::Relaxed);
        sent
    }

    /// Members of a named group, or 1 for a connected client's id.
    pub fn group_size(&self, name: &str) -> usize {
        let state = self.state.read();
        if name.starts_with('/') {
            state.groups.get(name).map_or(0, HashSet::len)
        } else {
            usize::from(state.clients.contains_key(name))
        }
    }

    pub fn report(&self) -> serde_json::Value {
        let (clients, groups) = {
            let state = self.state.read();
            (state.clients.len(), state.groups.len())
        };
        let s = &self.stats;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "clients": clients,
            "groups": groups,
            "opened": n(&s.opened),
            "refused": n(&s.refused),
            "messages": n(&s.messages),
            "deliveries": n(&s.deliveries),
            "published": n(&s.published),
            "backend_errors": n(&s.backend_errors),
            "slow_clients": n(&s.slow_clients),
        })
    }
}

impl State {
    fn join(&mut self, id: &str, group: &str) {
        let Some((key, _)) = self.clients.get_key_value(id) else {
            return;
        };
        let key = key.clone();
        let Some(client) = self.clients.get_mut(id) else {
            return;
        };
        if client.groups.insert(group.to_string()) {
            self.groups
                .entry(group.to_string())
                .or_default()
                .insert(key);
        }
    }

    fn leave(&mut self, id: &str, group: &str) {
        if let Some(client) = self.clients.get_mut(id) {
            client.groups.remove(group);
        }
        if let Some(members) = self.groups.get_mut(group) {
            members.remove(id);
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    fn remove(&mut self, id: &str) {
        let Some(client) = self.clients.remove(id) else {
            return;
        };
        for group in client.groups {
            if let Some(members) = self.groups.get_mut(&group) {
                members.remove(id);
                if members.is_empty() {
                    self.groups.remove(&group);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Answer {
        protocol::parse(json.as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn groups_direct_messages_and_replies() {
        let hub = Hub::default();
        let (a, b) = (hub.new_id(), hub.new_id());
        let (mut ra, mut rb) = (hub.register(a.clone()), hub.register(b.clone()));
        assert!(!a.starts_with('/') && a.len() == 16);
        hub.apply(Some(&a), &answer(r#"{"+": ["/room", "/other"]}"#));
        hub.apply(Some(&b), &answer(r#"{"+": "/room"}"#));
        assert_eq!(hub.group_size("/room"), 2);
        assert_eq!(hub.group_size(&a), 1);
        // To a group: once to each member.
        let n = hub.apply(Some(&b), &answer(r#"{"@": ["/room", "/room"], "t": 1}"#));
        assert_eq!(n, 2);
        assert_eq!(&*ra.recv().await.unwrap(), r#"{"t":1}"#);
        assert_eq!(&*rb.recv().await.unwrap(), r#"{"t":1}"#);
        // No `@`: back to the sender; a publish without `@` goes nowhere.
        assert_eq!(hub.apply(Some(&a), &answer(r#"{"pong": true}"#)), 1);
        assert_eq!(&*ra.recv().await.unwrap(), r#"{"pong":true}"#);
        assert_eq!(hub.apply(None, &answer(r#"{"x": 1}"#)), 0);
        // To one client by id.
        let direct = format!(r#"{{"@": "{b}", "dm": "hi"}}"#);
        assert_eq!(hub.apply(None, &answer(&direct)), 1);
        assert_eq!(&*rb.recv().await.unwrap(), r#"{"dm":"hi"}"#);
        hub.apply(Some(&a), &answer(r#"{"-": "/room"}"#));
        assert_eq!(hub.group_size("/room"), 1);
        hub.unregister(&b);
        assert_eq!(hub.group_size("/room"), 0);
        assert_eq!(hub.report()["groups"], 1, "{}", hub.report());
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_dropped() {
        let hub = Hub::default();
        let a = hub.new_id();
        let _ra = hub.register(a.clone());
        hub.apply(Some(&a), &answer(r#"{"+": "/g"}"#));
        for _ in 0..CLIENT_QUEUE {
            assert_eq!(hub.deliver(&["/g".into()], "m"), 1);
        }
        assert_eq!(hub.deliver(&["/g".into()], "m"), 0);
        assert_eq!(hub.group_size(&a), 0);
        assert_eq!(hub.report()["slow_clients"], 1);
    }
}
