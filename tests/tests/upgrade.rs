//! A zero-downtime binary upgrade, as docs/operations.md describes it: a
//! new kavro-host started with `--upgrade` takes the listening sockets of
//! the running one when that one gets SIGQUIT; the old one finishes what
//! it accepted and exits. Under continuous load no request fails.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, eventually_within, free_port, proxy_to_upstreams, Host};

#[test]
fn a_binary_upgrade_under_load_fails_no_request() {
    let app = Upstream::start("app");
    let config = proxy_to_upstreams(&[("app", app.addr.to_string())], 5000);
    let port = free_port();
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("upgrade.sock");
    let socket = socket.to_str().unwrap();
    let mut old = Host::builder()
        .config(&config)
        .listen_port(port)
        .arg("--upgrade-socket")
        .arg(socket)
        .start();

    let stop = AtomicBool::new(false);
    let (ok, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let url = old.url("/?upgrade");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    match c.get(&url).send() {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        Ok(r) => {
                            eprintln!("answered {}", r.status());
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            eprintln!("failed: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }

        let mut new = Host::builder()
            .config(&config)
            .listen_port(port)
            .arg("--upgrade")
            .arg("--upgrade-socket")
            .arg(socket)
            .start();
        eventually_within(
            Duration::from_secs(30),
            "the new host waits for the sockets",
            || {
                new.log()
                    .contains("waiting for the running kavro-host's listening sockets")
                    .then_some(())
            },
        );
        let before = ok.load(Ordering::Relaxed);
        old.signal("QUIT");
        let status = old.wait_exit(Duration::from_secs(40));
        assert!(
            status.success(),
            "the old host exits 0: {status}\n{}",
            old.log()
        );
        old.assert_logged("handing the listening sockets to the new kavro-host");
        // The new one serves on the same port once the old one is gone.
        let after_exit = ok.load(Ordering::Relaxed);
        eventually_within(
            Duration::from_secs(10),
            "requests after the old host left",
            || (ok.load(Ordering::Relaxed) > after_exit + 50).then_some(()),
        );
        stop.store(true, Ordering::Relaxed);
        assert!(after_exit > before, "requests went on during the handover");
        assert_eq!(new.admin_json("/status")["status"], "ok", "{}", new.log());
        let _ = new.terminate(Duration::from_secs(20));
    });
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{} requests answered",
        ok.load(Ordering::Relaxed)
    );
}
