//! Post in batches: a post-only plugin gets the completions its worker
//! queued in one call. Under 32 connections every completion is delivered
//! once, a panic mid-batch costs only its own request (counted once), a
//! plugin that runs out of time mid-batch loses no one else's completion,
//! and a SIGTERM waits for the queue.

use std::collections::HashMap;
use std::time::Duration;

use kavro_e2e::sites::connection;
use kavro_e2e::{eventually, respond_route, Host};

const CONNECTIONS: usize = 32;
const EACH: usize = 20;
const STOP_WITHIN: Duration = Duration::from_secs(10);

fn host(limits: &str) -> Host {
    let config = format!(
        "{}\n[[plugins]]\nname = \"only\"\n[plugins.limits]\n{limits}\n",
        respond_route("r", "/*", "ok")
    );
    Host::builder()
        .plugin("only-post", "only")
        .config(&config)
        .start()
}

/// Sends `CONNECTIONS × EACH` requests numbered 0.., with the headers
/// `extra(n)` picks; every one must be answered 200.
fn load(host: &Host, extra: impl Fn(usize) -> Option<(&'static str, &'static str)> + Sync) {
    let url = host.url("/");
    std::thread::scope(|s| {
        for c in 0..CONNECTIONS {
            let (url, extra) = (&url, &extra);
            s.spawn(move || {
                let client = connection();
                for k in 0..EACH {
                    let n = c * EACH + k;
                    let mut req = client.get(url).header("x-n", n.to_string());
                    if let Some((name, value)) = extra(n) {
                        req = req.header(name, value);
                    }
                    let r = req.send().expect("an answer");
                    assert_eq!(r.status(), 200);
                }
            });
        }
    });
}

/// How many times each numbered completion was logged by the plugin.
fn delivered(log: &str) -> HashMap<usize, usize> {
    let mut seen = HashMap::new();
    for line in log.lines() {
        if let Some(rest) = line.split("completed ").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse() {
                *seen.entry(n).or_insert(0) += 1;
            }
        }
    }
    seen
}

fn failures(host: &Host, kind: &str) -> u64 {
    host.admin_json("/diagnostics")["plugins"][0]["errors"][kind]
        .as_u64()
        .expect("a failure count")
}

#[test]
fn every_completion_once_in_fewer_calls_and_a_panic_costs_only_its_own() {
    let mut host = host("");
    let panics = |n: usize| n % 37 == 5;
    load(&host, |n| panics(n).then_some(("x-panic", "1")));
    let sent = CONNECTIONS * EACH;
    let expected = (0..sent).filter(|&n| !panics(n)).count();
    let seen = eventually("every completion delivered", || {
        let seen = delivered(&host.log());
        (seen.len() >= expected).then_some(seen)
    });
    for n in 0..sent {
        let times = seen.get(&n).copied().unwrap_or(0);
        let want = usize::from(!panics(n));
        assert_eq!(times, want, "completion {n} delivered {times} times");
    }
    let panicked = (0..sent).filter(|&n| panics(n)).count() as u64;
    assert_eq!(failures(&host, "trap"), panicked, "{}", host.log());
    let post = host.admin_json("/diagnostics")["post"].clone();
    let batches = post["batches"].as_u64().unwrap();
    assert!(
        batches < sent as u64,
        "{sent} completions in {batches} calls: {post}"
    );
    let status = host.terminate(STOP_WITHIN);
    assert!(status.success(), "exit {status}\n{}", host.log());
}

#[test]
fn a_batch_out_of_time_is_delivered_again_and_fails_only_the_looping_request() {
    let mut host = host("deadline_ms = 50");
    let spins = |n: usize| n % 101 == 7;
    load(&host, |n| spins(n).then_some(("x-spin", "1")));
    let sent = CONNECTIONS * EACH;
    let looping = (0..sent).filter(|&n| spins(n)).count() as u64;
    eventually("each looping completion failed once", || {
        (failures(&host, "deadline") >= looping).then_some(())
    });
    let seen = eventually("every other completion delivered", || {
        let seen = delivered(&host.log());
        (seen.len() >= sent - looping as usize).then_some(seen)
    });
    for n in (0..sent).filter(|&n| !spins(n)) {
        assert!(seen.contains_key(&n), "completion {n} lost");
    }
    // Counted once each, though a batch ran out of time around them.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(failures(&host, "deadline"), looping, "{}", host.log());
    let status = host.terminate(STOP_WITHIN);
    assert!(status.success(), "exit {status}\n{}", host.log());
}

#[test]
fn a_sigterm_waits_for_the_queued_completions() {
    let mut host = host("deadline_ms = 5000");
    // Each post works a few milliseconds: the responses are all out long
    // before their completions are.
    load(&host, |_| Some(("x-work", "3000000")));
    let status = host.terminate(STOP_WITHIN);
    assert!(status.success(), "exit {status}\n{}", host.log());
    let seen = delivered(&host.log());
    let sent = CONNECTIONS * EACH;
    let lost: Vec<usize> = (0..sent).filter(|n| !seen.contains_key(n)).collect();
    assert!(lost.is_empty(), "{} completions lost: {lost:?}", lost.len());
}
