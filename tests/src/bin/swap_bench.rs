//! Hot-swap benchmark (not a test): how long from a plugin file being
//! complete in the plugins folder to the new version serving, and requests/s
//! during a swap storm against steady state: a precompiled Rust plugin, and
//! an uncached Python one (baseline code first, then optimized). Loopback
//! only, bounded.
//!
//!   ./dev.sh bench-swap

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kavro_e2e::{client, respond_route, wasm, Host};

fn main() {
    let host = Host::builder()
        .plugin("probe", "ver")
        .settings(
            "ver",
            "capabilities = [\"kv\"]\n[config]\nresponse_set = \"x-version: headers\"\n",
        )
        .config(&respond_route("hello", "/hello", "hello"))
        .start();
    let versions = [wasm("headers"), wasm("probe")];
    let c = client();
    // Which version answers, by a response header only it sets.
    let answers_with = |header: &str| {
        c.get(host.url("/hello"))
            .send()
            .unwrap()
            .headers()
            .contains_key(header)
    };
    let is_headers = || answers_with("x-version");
    let place = |i: usize| {
        let tmp = host.plugins_dir().join("ver.wasm.tmp");
        std::fs::copy(&versions[i % 2], &tmp).unwrap();
        std::fs::rename(&tmp, host.plugins_dir().join("ver.wasm")).unwrap();
    };

    // Swap latency: rename into place, then poll until the new version answers.
    // Both components are compiled once first, so this is the precompiled case.
    let mut took = Vec::new();
    for i in 0..40 {
        let want_headers = i % 2 == 0;
        place(i);
        let start = Instant::now();
        while is_headers() != want_headers {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "swap {i} never served"
            );
        }
        if i >= 2 {
            took.push(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "swap latency (file renamed into place -> new version serving), precompiled Rust plugin, {} swaps: median {:.1} ms, p99 {:.1} ms",
        took.len(),
        ms(took[took.len() / 2]),
        ms(took[(took.len() * 99 / 100).min(took.len() - 1)])
    );

    // An uncached Python component: the 18 MB example, its artifact removed
    // before each swap. It serves on baseline code first; each round waits
    // for the optimized code too (and reports how long that took), then
    // goes back to the Rust plugin.
    let python = wasm("ab-test-python");
    let cache = host.dir.path().join("cache");
    let code = || host.admin_json("/plugins")["plugins"][0]["code"].clone();
    let (mut first, mut optimized) = (Vec::new(), Vec::new());
    for round in 0..5 {
        for f in std::fs::read_dir(&cache).unwrap().flatten() {
            if f.metadata().unwrap().len() > 4 << 20 {
                std::fs::remove_file(f.path()).unwrap();
            }
        }
        let tmp = host.plugins_dir().join("ver.wasm.tmp");
        std::fs::copy(&python, &tmp).unwrap();
        std::fs::rename(&tmp, host.plugins_dir().join("ver.wasm")).unwrap();
        let start = Instant::now();
        while !answers_with("x-ab-variant") {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "python swap {round} never served"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        first.push(start.elapsed());
        while code() != "optimized" {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "python round {round} never optimized"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        optimized.push(start.elapsed());
        place(0);
        while !is_headers() {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    first.sort();
    optimized.sort();
    println!(
        "swap latency, uncached 18 MB Python component, {} swaps: median {:.0} ms, max {:.0} ms (baseline code); optimized code serving after median {:.0} ms",
        first.len(),
        ms(first[first.len() / 2]),
        ms(first[first.len() - 1]),
        ms(optimized[optimized.len() / 2]),
    );

    // Throughput: 4 clients for 3 s steady, then 3 s while swapping nonstop.
    let run = |storm: bool| -> f64 {
        let stop = AtomicBool::new(false);
        let done = AtomicUsize::new(0);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let c = client();
                    while !stop.load(Ordering::Relaxed) {
                        let r = c
                            .get(host.url("/hello"))
                            .send()
                            .expect("no request may fail");
                        assert_eq!(r.status(), 200);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            let mut i = 0;
            while start.elapsed() < Duration::from_secs(3) {
                if storm {
                    place(i);
                    i += 1;
                    let _ = client().post(host.admin_url("/reload")).send();
                } else {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
    };
    let steady = run(false);
    let storm = run(true);
    println!(
        "requests/s, 4 keep-alive clients: steady {steady:.0}, during a swap storm {storm:.0} ({:.2}x)",
        storm / steady
    );
}
