//! Plugin calls that do not end: each phase alone spinning until its
//! deadline, and a SIGTERM while calls are still under way. Apart from the
//! heavier single-phase tests: a spinning call finishes on the idle-priority
//! slow lane, which gets no CPU while other work saturates the machine.

use std::time::{Duration, Instant};

use kavro_e2e::sites::{connection, Site, PATHS};
use kavro_e2e::{eventually, Host};

const CONNECTIONS: usize = 32;
/// How long a host may take to stop on SIGTERM once its requests are done.
const STOP_WITHIN: Duration = Duration::from_secs(5);

const PHASES: [&str; 5] = ["prime", "prepare", "present", "package", "post"];

/// Each phase spinning until its deadline on every request: each request
/// is still answered (present, on a proxied response whose head has gone,
/// ends the body early; the others answer 500 naming the plugin), other
/// requests are served again, and the host stops on SIGTERM.
#[test]
fn each_phase_alone_spinning_until_its_deadline() {
    let site = Site::start();
    for phase in PHASES {
        let mut host = site.host(
            phase,
            "failure = \"fail-closed\"\n[plugins.limits]\ndeadline_ms = 50",
        );
        let answered = std::thread::scope(|s| {
            let workers: Vec<_> = (0..CONNECTIONS)
                .map(|i| {
                    let url = host.url(PATHS[i % PATHS.len()]);
                    s.spawn(move || {
                        let c = connection();
                        (0..2)
                            .filter(|_| {
                                c.get(&url)
                                    .header("x-spin", "1")
                                    .send()
                                    .and_then(|r| r.bytes().map(|_| ()))
                                    .is_ok()
                            })
                            .count()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .sum::<usize>()
        });
        assert_eq!(answered, CONNECTIONS * 2, "{phase}:\n{}", host.log());
        // A request without x-spin is served again once the plugin's
        // back-off (after five failures in a row, 100 ms) is over.
        eventually(&format!("{phase}: a request without x-spin served"), || {
            let r = connection().get(host.url("/respond")).send().unwrap();
            (r.status() == 200).then_some(())
        });
        let status = host.terminate(STOP_WITHIN);
        assert!(status.success(), "{phase}: exit {status}\n{}", host.log());
    }
}

/// A SIGTERM while plugin calls still run, far from their deadline: the
/// host waits for them no longer than its grace period, says what was
/// still running, and exits.
#[test]
fn sigterm_with_calls_still_running() {
    let site = Site::start();
    let config = format!(
        "[server]\nshutdown_grace_s = 1\n\n{}",
        site.config("[plugins.limits]\ndeadline_ms = 60000")
    );
    let mut host = Host::builder()
        .plugin("only-prime", "only")
        .config(&config)
        .start();
    let url = host.url("/respond");
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let _ = connection().get(url).header("x-spin", "1").send();
            })
        })
        .collect();
    eventually("four calls under way", || {
        (host.admin_json("/diagnostics")["in_flight"].as_u64() == Some(4)).then_some(())
    });
    let started = Instant::now();
    let status = host.terminate(Duration::from_secs(4));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the grace period was not given"
    );
    assert!(!status.success(), "requests were cut short: {status}");
    let log = host.log();
    assert!(
        log.contains("still running") && log.contains("only"),
        "the log says what was cut short:\n{log}"
    );
    for c in clients {
        c.join().unwrap();
    }
}
