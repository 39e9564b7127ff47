//! Kept-alive connections to the FastCGI server: at most `max_connections`
//! in use or idle, idle ones closed after `idle_timeout`, because PHP-FPM
//! ties one worker to each open connection.

use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use fastcgi_client::conn::KeepAlive;
use fastcgi_client::io::TokioCompat;
use fastcgi_client::Client;
use parking_lot::Mutex;

use crate::config::Admission;
use crate::upstream::admission::{Counters, Gate, Refused, Slot};

use super::address::{Address, Stream};

pub(super) type Conn = Client<TokioCompat<Box<dyn Stream>>, KeepAlive>;

/// Opens a kept-alive connection.
pub(super) async fn connect(address: &Address) -> std::io::Result<Conn> {
    let stream = address.connect().await?;
    // The client writes each record header and param separately and
    // flushes at the end of the request: buffer them into a few writes.
    let buffered: Box<dyn Stream> =
        Box::new(tokio::io::BufWriter::with_capacity(16 * 1024, stream));
    Ok(Client::new_keep_alive_tokio(buffered))
}

/// The connections of one route.
///
/// Kavro's own rather than a crate's (see BENCHMARKS.md, crate decisions):
/// `fastcgi-client` has no pool; `pingora_pool` bounds idle connections
/// only, reuses the oldest first, so a trickle after a burst keeps every
/// connection (and its PHP-FPM worker) open, and spawns a timer task per
/// release; deadpool and bb8 would give the retry after a stale keep-alive
/// the next idle connection, as stale after a PHP-FPM restart, where
/// [`connect`] opens a fresh one. None of them prefers a connection opened
/// on the calling worker's thread.
pub(super) struct Pool {
    idle: Arc<IdlePool<Conn>>,
    /// One slot per request in flight, with a bounded queue; with the idle
    /// pool, bounds open connections.
    slots: Gate,
    counters: Counters,
    idle_timeout: Duration,
    sweeper: OnceLock<()>,
}

impl Pool {
    pub(super) fn new(limits: Admission, idle_timeout: Duration) -> Pool {
        Pool {
            idle: Arc::default(),
            slots: Gate::new(limits),
            counters: Counters::default(),
            idle_timeout,
            sweeper: OnceLock::new(),
        }
    }

    /// Waits in turn for one of the `max_connections` slots, or is refused
    /// when the queue is full or the wait runs out; a connection taken or
    /// opened while holding it goes back with [`Pool::put`] or is dropped.
    pub(super) async fn slot(&self) -> Result<Slot, Refused> {
        self.start_sweeper();
        self.slots.enter(&self.counters).await
    }

    pub(super) fn take(&self) -> Option<Conn> {
        self.idle.take()
    }

    pub(super) fn put(&self, conn: Conn) {
        self.idle.put(conn)
    }

    /// Closes connections idle past `idle_timeout`, so that idle ones do not
    /// hold PHP-FPM workers another client needs. It ends with this route.
    fn start_sweeper(&self) {
        self.sweeper.get_or_init(|| {
            let pool = Arc::downgrade(&self.idle);
            let every = self.idle_timeout;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every / 2).await;
                    match pool.upgrade() {
                        Some(p) => p.close_older_than(every),
                        None => return,
                    }
                }
            });
        });
    }
}

/// Kept-alive connections not in use. Each remembers the worker thread that
/// opened it: its socket is registered with that thread's reactor, so using
/// it from another thread costs a cross-thread wake-up per read. Generic so
/// that bench/crate-decisions measures this very pool.
pub struct IdlePool<C> {
    conns: Mutex<Vec<Idle<C>>>,
}

struct Idle<C> {
    conn: C,
    thread: ThreadId,
    since: Instant,
}

impl<C> Default for IdlePool<C> {
    fn default() -> Self {
        IdlePool {
            conns: Mutex::new(Vec::new()),
        }
    }
}

impl<C> IdlePool<C> {
    /// An idle connection, preferring one opened on this thread.
    pub fn take(&self) -> Option<C> {
        let me = std::thread::current().id();
        let mut conns = self.conns.lock();
        let i = conns
            .iter()
            .rposition(|c| c.thread == me)
            .or_else(|| conns.len().checked_sub(1))?;
        Some(conns.swap_remove(i).conn)
    }

    pub fn put(&self, conn: C) {
        self.conns.lock().push(Idle {
            conn,
            thread: std::thread::current().id(),
            since: Instant::now(),
        });
    }

    pub fn close_older_than(&self, idle: Duration) {
        self.conns.lock().retain(|c| c.since.elapsed() < idle);
    }
}
