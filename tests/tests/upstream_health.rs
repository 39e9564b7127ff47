//! Passive health of an upstream's targets, end to end with real upstream
//! servers: a target that stops answering is ejected and no request fails
//! for it; it returns when it answers again; an upstream whose targets are
//! all out answers 503 with Retry-After at once.

use std::time::{Duration, Instant};

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, eventually, Host};

fn config(targets: &[String], eject: &str) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[upstreams.app]\ntargets = [{}]\nconnect_timeout_ms = 1000\neject = {{ {eject} }}\n\n\
         [[routes]]\nname = \"app\"\npath = \"/*\"\nproxy = \"app\"\n",
        list.join(", ")
    )
}

fn target_state(host: &Host, target: &str) -> String {
    let d = host.admin_json("/diagnostics");
    d["upstreams"]["app"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == target)
        .map(|t| t["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// 32 clients at once against two targets, one of them dead: every request
/// answers 200 (a refused connection goes to the other target), and the
/// dead one is ejected; brought back, it serves again once its ejection ends.
#[test]
fn a_dead_target_is_ejected_without_failed_requests_and_comes_back() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let b_addr = b.addr;
    let host = Host::builder()
        .config(&config(
            &[a.addr.to_string(), b_addr.to_string()],
            "failures = 2, base_ms = 1500, max_ms = 1500",
        ))
        .start();
    let c = client();
    for _ in 0..4 {
        assert_eq!(c.get(host.url("/")).send().unwrap().status(), 200);
    }
    assert!(b.hits() > 0, "round robin reaches both");
    drop(b);

    let failed: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..32)
            .map(|_| {
                s.spawn(|| {
                    let c = client();
                    (0..10)
                        .filter(|_| {
                            c.get(host.url("/"))
                                .send()
                                .map_or(true, |r| r.status() != 200)
                        })
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(failed, 0, "no request fails for a dead target");
    assert_eq!(target_state(&host, &b_addr.to_string()), "ejected");
    host.assert_logged("upstream target ejected");

    let b = Upstream::start_at("b", b_addr);
    eventually("the target serves again", || {
        c.get(host.url("/")).send().ok();
        (b.hits() > 0).then_some(())
    });
    assert_eq!(target_state(&host, &b_addr.to_string()), "up");
    host.assert_logged("upstream target is back in rotation");
}

/// Every target out: 503 with Retry-After, without waiting on a connect.
#[test]
fn an_upstream_with_every_target_out_answers_503_at_once() {
    let a = Upstream::start("a");
    let addr = a.addr;
    drop(a);
    let host = Host::builder()
        .config(&config(
            &[addr.to_string()],
            "failures = 1, base_ms = 30000",
        ))
        .start();
    let c = client();
    // The first request finds the target dead: 502, and it is ejected.
    assert_eq!(c.get(host.url("/")).send().unwrap().status(), 502);
    let started = Instant::now();
    let r = c.get(host.url("/")).send().unwrap();
    assert_eq!(r.status(), 503);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "retry-after {wait}");
    assert!(r
        .text()
        .unwrap()
        .contains("every target of upstream `app` is failing"));
    assert!(started.elapsed() < Duration::from_millis(500));
}

/// `on_5xx` counts 5xx answers; without it they do not eject.
#[test]
fn server_errors_eject_only_where_counted() {
    let a = Upstream::start("a");
    for (eject, state) in [
        ("failures = 2, on_5xx = true", "ejected"),
        ("failures = 2", "up"),
    ] {
        let host = Host::builder()
            .config(&config(&[a.addr.to_string()], eject))
            .start();
        let c = client();
        for _ in 0..3 {
            // The echo upstream answers ?status=N with N.
            let _ = c.get(host.url("/?status=500")).send().unwrap();
        }
        assert_eq!(target_state(&host, &a.addr.to_string()), state, "{eject}");
    }
}

/// Ejection settings that cannot work are refused with the field and a hint.
#[test]
fn impossible_ejection_settings_are_refused() {
    for (eject, field) in [
        ("base_ms = 0", "upstreams.app.eject.base_ms"),
        (
            "base_ms = 5000, max_ms = 1000",
            "upstreams.app.eject.max_ms",
        ),
    ] {
        let (ok, text) = Host::builder()
            .config(&config(&["127.0.0.1:9".to_string()], eject))
            .validate();
        assert!(!ok, "{eject}: {text}");
        assert!(text.contains(field) && text.contains("hint:"), "{text}");
    }
}
