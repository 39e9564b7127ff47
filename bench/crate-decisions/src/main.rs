//! The measurements behind Kavro's choices between a well-kept crate and
//! its own code (BENCHMARKS.md, "crate decisions"):
//!
//! - `pool`: Kavro's FastCGI idle pool against `pingora_pool`, per request
//!   and in connections (PHP-FPM workers) kept open;
//! - `affinity`: a socket used from the worker thread whose reactor it is
//!   registered with, and from another;
//! - `ranges`: Pingora's range filter and `http-range-header` on edge cases;
//! - `clock`: the thread CPU clock read through libc and through rustix;
//! - `idle`: `SCHED_IDLE` through thread-priority, as the kernel reports it.
//!
//! `cargo build --release -p crate-decisions && $CARGO_TARGET_DIR/release/crate-decisions [WHAT]`

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora_pool::{ConnectionMeta, ConnectionPool};

/// Connections open now.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// A connection that counts itself; its number is its pool id.
struct FakeConn(u64);

impl FakeConn {
    fn open(n: u64) -> FakeConn {
        OPEN.fetch_add(1, Ordering::Relaxed);
        FakeConn(n)
    }
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Kavro's idle pool, the one its FastCGI routes use.
type IdlePool = kavro_host::actions::fastcgi::IdlePool<FakeConn>;

/// `pingora_pool` as Pingora's connectors use it: a released connection
/// goes back with a task that drops it after the idle timeout unless it is
/// picked up first.
struct PingoraPool(Arc<ConnectionPool<FakeConn>>);

impl PingoraPool {
    fn take(&self) -> Option<FakeConn> {
        self.0.get(&1)
    }

    fn put(&self, conn: FakeConn, timeout: Duration) {
        let meta = ConnectionMeta::new(1, conn.0 as i32);
        let (notify_evicted, watch_use) = self.0.put(&meta, conn);
        let pool = self.0.clone();
        let (closed_tx, closed_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _closed_tx = closed_tx;
            pool.idle_timeout(&meta, Some(timeout), notify_evicted, closed_rx, watch_use)
                .await;
        });
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn pool() {
    const N: u32 = 200_000;
    current_thread().block_on(async {
        let hand = IdlePool::default();
        hand.put(FakeConn::open(0));
        let start = Instant::now();
        for _ in 0..N {
            let c = hand.take().expect("pooled");
            hand.put(std::hint::black_box(c));
        }
        let hand_ns = start.elapsed().as_nanos() as f64 / f64::from(N);

        // Pingora's idle tasks need the loop to yield; a yield alone costs:
        let start = Instant::now();
        for _ in 0..N {
            tokio::task::yield_now().await;
        }
        let yield_ns = start.elapsed().as_nanos() as f64 / f64::from(N);
        let p = PingoraPool(Arc::new(ConnectionPool::new(64)));
        p.put(FakeConn::open(1), Duration::from_secs(2));
        let start = Instant::now();
        for _ in 0..N {
            let c = p.take().expect("pooled");
            p.put(c, Duration::from_secs(2));
            tokio::task::yield_now().await;
        }
        let pingora_ns = start.elapsed().as_nanos() as f64 / f64::from(N) - yield_ns;
        println!(
            "pool take+put per request: IdlePool {hand_ns:.0} ns, pingora_pool with its idle \
             task {pingora_ns:.0} ns (a yield, {yield_ns:.0} ns, subtracted)"
        );
    });

    // A burst opens 4 connections; then one request every 20 ms for 1 s,
    // idle timeout 200 ms. How many stay open, each holding a PHP-FPM worker?
    current_thread().block_on(async {
        let timeout = Duration::from_millis(200);
        let hand = Arc::new(IdlePool::default());
        let sweeper = {
            let hand = hand.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(timeout / 2).await;
                    hand.close_older_than(timeout);
                }
            })
        };
        for i in 1..=4 {
            hand.put(FakeConn::open(i));
        }
        let mut fresh = 100;
        for _ in 0..50 {
            let c = hand.take().unwrap_or_else(|| {
                fresh += 1;
                FakeConn::open(fresh)
            });
            tokio::time::sleep(Duration::from_millis(1)).await;
            hand.put(c);
            tokio::time::sleep(Duration::from_millis(19)).await;
        }
        let hand_open = OPEN.load(Ordering::Relaxed);
        sweeper.abort();
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(hand);
        assert_eq!(OPEN.load(Ordering::Relaxed), 0);

        let p = PingoraPool(Arc::new(ConnectionPool::new(64)));
        for i in 1..=4 {
            p.put(FakeConn::open(i), timeout);
        }
        for _ in 0..50 {
            let c = p.take().unwrap_or_else(|| {
                fresh += 1;
                FakeConn::open(fresh)
            });
            tokio::time::sleep(Duration::from_millis(1)).await;
            p.put(c, timeout);
            tokio::time::sleep(Duration::from_millis(19)).await;
        }
        let pingora_open = OPEN.load(Ordering::Relaxed);
        println!(
            "open after a burst of 4, then 1 s of one request per 20 ms (idle timeout 200 ms): \
             IdlePool {hand_open}, pingora_pool {pingora_open}"
        );
    });
}

/// A blocking echo peer, as another process's worker would be.
fn echo_peer() -> (std::os::unix::net::UnixStream, std::thread::JoinHandle<()>) {
    let (a, mut b) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 1];
        while b.read_exact(&mut buf).is_ok() && b.write_all(&buf).is_ok() {}
    });
    a.set_nonblocking(true).expect("non-blocking");
    (a, echo)
}

async fn ping_pong(mut s: tokio::net::UnixStream, n: u32) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 1];
    for _ in 0..1000 {
        s.write_all(b"x").await.expect("write");
        s.read_exact(&mut buf).await.expect("read");
    }
    let start = Instant::now();
    for _ in 0..n {
        s.write_all(b"x").await.expect("write");
        s.read_exact(&mut buf).await.expect("read");
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

/// Kavro's workers are current-thread runtimes (no work stealing), each
/// with its own reactor: a socket is registered with the one it opened on.
fn affinity() {
    const N: u32 = 20_000;
    let (a, echo) = echo_peer();
    let same = current_thread().block_on(async move {
        ping_pong(tokio::net::UnixStream::from_std(a).expect("register"), N).await
    });
    echo.join().expect("echo");

    let (a, echo) = echo_peer();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let owner = std::thread::spawn(move || {
        current_thread().block_on(async move {
            tx.send(tokio::net::UnixStream::from_std(a).expect("register"))
                .expect("hand over");
            let _ = stop_rx.await;
        });
    });
    let s = rx.recv().expect("registered");
    let other = current_thread().block_on(ping_pong(s, N));
    let _ = stop_tx.send(());
    owner.join().expect("owner");
    echo.join().expect("echo");
    println!(
        "1-byte round trip over a unix socket: on its own worker {same:.1} µs, \
         from another worker {other:.1} µs"
    );
}

fn ranges() {
    use pingora_http::{RequestHeader, ResponseHeader};
    let cases = [
        ("bytes=2-5", 10),
        ("bytes=-0", 10),
        ("bytes=-5", 0),
        ("bytes=0-", 0),
        ("bytes=2-1", 10),
        ("bytes=x-y", 10),
        ("bytes=0-1,4-5", 10),
    ];
    for (range, len) in cases {
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        req.insert_header("range", range).expect("range");
        let mut resp = ResponseHeader::build(200, None).expect("response");
        resp.insert_header("content-length", len.to_string())
            .expect("length");
        // At most one range, as Kavro serves them.
        pingora_proxy::range_header_filter(&req, &mut resp, Some(2));
        let pingora = format!(
            "{} {}",
            resp.status.as_u16(),
            resp.headers
                .get("content-range")
                .map_or("", |v| v.to_str().unwrap_or("?"))
        );
        let crate_says = match http_range_header::parse_range_header(range) {
            Err(e) => format!("ignored ({e})"),
            Ok(p) if p.len() > 1 => "several: whole file".to_string(),
            Ok(p) => match p.validate(len) {
                Ok(r) if r.is_empty() => "whole file".to_string(),
                Ok(r) => format!("206 {:?}", r[0]),
                Err(e) => format!("416 ({e})"),
            },
        };
        println!(
            "{range:>14} of {len:>2} bytes: pingora range_header_filter {pingora:<36} \
             http-range-header {crate_says}"
        );
    }
}

fn clock() {
    const N: u32 = 2_000_000;
    let mut sum = 0u64;
    let start = Instant::now();
    for _ in 0..N {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a pointer to a live timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        sum = sum.wrapping_add(ts.tv_nsec as u64);
    }
    let libc_ns = start.elapsed().as_nanos() as f64 / f64::from(N);
    let start = Instant::now();
    for _ in 0..N {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        sum = sum.wrapping_add(ts.tv_nsec as u64);
    }
    let rustix_ns = start.elapsed().as_nanos() as f64 / f64::from(N);
    std::hint::black_box(sum);
    println!("CLOCK_THREAD_CPUTIME_ID read: libc {libc_ns:.0} ns, rustix {rustix_ns:.0} ns");
}

fn idle() {
    std::thread::spawn(|| {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
        let set = thread_priority::set_thread_priority_and_policy(
            thread_priority::thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        );
        let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
        let policy = sched
            .lines()
            .find_map(|l| l.strip_prefix("policy"))
            .map_or("?", |l| l.trim_start_matches([' ', ':']).trim());
        println!("thread-priority SCHED_IDLE: {set:?}; kernel policy {policy} (5 = SCHED_IDLE)");
    })
    .join()
    .expect("idle thread");
}

fn main() {
    let what = std::env::args().nth(1);
    let all = what.is_none();
    let is = |w: &str| all || what.as_deref() == Some(w);
    if is("pool") {
        pool();
    }
    if is("affinity") {
        affinity();
    }
    if is("ranges") {
        ranges();
    }
    if is("clock") {
        clock();
    }
    if is("idle") {
        idle();
    }
}
