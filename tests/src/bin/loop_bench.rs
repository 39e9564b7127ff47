//! Containment benchmark (not a test): the p99 latency of well-behaved
//! requests while other clients keep hitting a plugin that loops until its
//! 50 ms deadline, against the same load without them. Loopback, bounded.
//!
//!   ./dev.sh bench-loop

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kavro_e2e::{client, respond_route, Host};

/// Latencies of well-behaved requests from 4 clients for `secs`, with
/// `loopers` clients meanwhile asking the plugin to loop.
fn run(host: &Host, loopers: usize, secs: u64) -> (Vec<Duration>, usize) {
    let stop = AtomicBool::new(false);
    let mut all = Vec::new();
    let mut looped = 0;
    std::thread::scope(|s| {
        let loops: Vec<_> = (0..loopers)
            .map(|_| {
                s.spawn(|| {
                    let c = client();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let r = c
                            .get(host.url("/"))
                            .header("x-hostile", "loop-prime")
                            .send()
                            .unwrap();
                        assert_eq!(r.status(), 500);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let good: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let c = client();
                    let mut took = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let r = c.get(host.url("/")).send().unwrap();
                        assert_eq!(r.status(), 200);
                        took.push(t.elapsed());
                    }
                    took
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        for g in good {
            all.extend(g.join().unwrap());
        }
        looped = loops.into_iter().map(|l| l.join().unwrap()).sum();
    });
    all.sort();
    (all, looped)
}

fn pct(v: &[Duration], q: f64) -> f64 {
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
}

fn main() {
    let host = Host::builder()
        .plugin("hostile", "hostile")
        .settings("hostile", "[limits]\ndeadline_ms = 50\n")
        .config(&respond_route("hello", "/*", "hello"))
        .start();
    run(&host, 0, 1); // warm up
                      // Interleaved rounds, each reporting its p99 ratio; the median round is
                      // the figure, since one 5 s round on a small shared machine is noisy.
    const ROUNDS: usize = 5;
    let mut ratios = Vec::new();
    for round in 1..=ROUNDS {
        let (calm, _) = run(&host, 0, 5);
        let (busy, looped) = run(&host, 2, 5);
        let ratio = pct(&busy, 0.99) / pct(&calm, 0.99);
        println!(
            "round {round}: well-behaved requests, 4 clients, 5 s each: without loops p50 {:.0} us p99 {:.0} us ({} requests); \
             with 2 clients looping a plugin to its 50 ms deadline ({looped} loops) p50 {:.0} us p99 {:.0} us ({} requests); p99 ratio {ratio:.2}",
            pct(&calm, 0.5),
            pct(&calm, 0.99),
            calm.len(),
            pct(&busy, 0.5),
            pct(&busy, 0.99),
            busy.len()
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "p99 with loops / without, median of {ROUNDS} rounds: {:.2}x (target <= 1.5x); all: {:?}",
        ratios[ROUNDS / 2],
        ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>()
    );
}
