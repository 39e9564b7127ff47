//! When a failed attempt at an upstream is made again, end to end with
//! real upstream servers and ports with nothing listening: a read that
//! fails on one target goes to another only where `retries.reads` allows
//! it and never for a POST or an answer already under way; `attempts`
//! bounds the attempts per request; the budget stops a storm of retries.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, free_port, Host};

/// `[upstreams.app]` with `targets` (addresses) and `extra` lines, and one
/// catch-all route proxying to it.
fn config(targets: &[String], extra: &str) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[upstreams.app]\ntargets = [{}]\nconnect_timeout_ms = 1000\n{extra}\n\n\
         [[routes]]\nname = \"app\"\npath = \"/*\"\nproxy = \"app\"\n",
        list.join(", ")
    )
}

/// Addresses on loopback with nothing listening: connections are refused.
fn dead(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect()
}

/// `/diagnostics` for upstream `app`.
fn app(host: &Host) -> serde_json::Value {
    host.admin_json("/diagnostics")["upstreams"]["app"].clone()
}

fn count(d: &serde_json::Value, field: &str) -> u64 {
    d[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no `{field}` in {d}"))
}

/// Attempts made at all of `app`'s targets.
fn attempts(d: &serde_json::Value) -> u64 {
    d["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["requests"].as_u64().expect("requests"))
        .sum()
}

fn assert_metric(host: &Host, name: &str, value: u64) {
    let text = host.metrics();
    let line = format!("{name}{{upstream=\"app\"}} {value}");
    assert!(text.contains(&line), "no `{line}` in\n{text}");
}

/// Sends requests built by `send` until one reaches `a` (at most 8): each
/// that reaches only `b` must answer 200 from it; the one that reaches `a`
/// must not reach `b` too, and its response is returned.
fn until_it_reaches(
    a: &Upstream,
    b: &Upstream,
    mut send: impl FnMut() -> reqwest::blocking::Response,
) -> reqwest::blocking::Response {
    for _ in 0..8 {
        let (a0, b0) = (a.hits(), b.hits());
        let r = send();
        if a.hits() > a0 {
            assert_eq!(b.hits(), b0, "the request was retried on b");
            return r;
        }
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-upstream"], "b");
    }
    panic!("8 requests in rotation and none reached a");
}

/// A target that never answers in time (a) and one that does (b): with
/// `reads = true` every GET answers 200 from b, a retry for each that
/// reached a; a POST that reached a is not sent again (504). With the
/// default `reads = false` a GET that reached a answers 504.
#[test]
fn reads_are_retried_on_another_target_only_when_allowed() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    a.set_delay(5000);
    let targets = [a.addr.to_string(), b.addr.to_string()];
    let host = Host::builder()
        .config(&config(
            &targets,
            "read_timeout_ms = 300\nretries = { reads = true }\neject = { failures = 0 }",
        ))
        .start();
    let c = client();
    for i in 0..10 {
        let r = c.get(host.url(&format!("/get/{i}"))).send().unwrap();
        assert_eq!(r.status(), 200, "GET {i}: {}", r.text().unwrap_or_default());
        assert_eq!(r.headers()["x-upstream"], "b", "GET {i}");
    }
    let reached_a = a.hits() as u64;
    assert!(reached_a >= 1, "round robin never chose a");
    assert_eq!(b.hits(), 10);
    let d = app(&host);
    let retries = count(&d, "retries");
    assert!(retries >= reached_a, "{reached_a} reached a: {d}");
    assert_eq!(count(&d, "retries_refused"), 0, "{d}");
    assert_eq!(attempts(&d), 10 + retries, "{d}");
    assert_metric(&host, "kavro_upstream_retries_total", retries);

    let r = until_it_reaches(&a, &b, || {
        c.post(host.url("/post")).body("once").send().unwrap()
    });
    assert_eq!(r.status(), 504, "{}", r.text().unwrap_or_default());
    drop(host);

    // The default: a read that failed is not made again.
    let host = Host::builder()
        .config(&config(
            &targets,
            "read_timeout_ms = 300\neject = { failures = 0 }",
        ))
        .start();
    for i in 0..3 {
        let r = until_it_reaches(&a, &b, || {
            c.get(host.url(&format!("/default/{i}"))).send().unwrap()
        });
        assert_eq!(r.status(), 504, "{}", r.text().unwrap_or_default());
    }
    assert_eq!(count(&app(&host), "retries"), 0);
}

/// A target that closes each connection without answering (a): a GET goes
/// on to b with `reads = true`; without, it answers 502.
#[test]
fn a_connection_closed_without_an_answer_is_retried_only_when_allowed() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    a.set_hang_up(true);
    let targets = [a.addr.to_string(), b.addr.to_string()];
    let host = Host::builder()
        .config(&config(
            &targets,
            "retries = { reads = true }\neject = { failures = 0 }",
        ))
        .start();
    let c = client();
    for i in 0..6 {
        let r = c.get(host.url(&format!("/get/{i}"))).send().unwrap();
        assert_eq!(r.status(), 200, "GET {i}: {}", r.text().unwrap_or_default());
        assert_eq!(r.headers()["x-upstream"], "b", "GET {i}");
    }
    let reached_a = a.hits() as u64;
    assert!(reached_a >= 1, "round robin never chose a");
    assert!(count(&app(&host), "retries") >= reached_a);
    drop(host);

    let host = Host::builder()
        .config(&config(&targets, "eject = { failures = 0 }"))
        .start();
    for i in 0..3 {
        let r = until_it_reaches(&a, &b, || {
            c.get(host.url(&format!("/default/{i}"))).send().unwrap()
        });
        assert_eq!(r.status(), 502, "{}", r.text().unwrap_or_default());
    }
}

/// Four dead targets and a live one, two attempts per request: a request
/// that meets two dead targets answers 502; none makes a third attempt.
#[test]
fn attempts_bound_the_retries() {
    let live = Upstream::start("live");
    let mut targets = dead(4);
    targets.push(live.addr.to_string());
    let host = Host::builder()
        .config(&config(
            &targets,
            "balance = \"round_robin\"\nretries = { attempts = 2 }\neject = { failures = 0 }",
        ))
        .start();
    let c = client();
    let requests = 20u64;
    let mut ok = 0;
    for i in 0..requests {
        let r = c.get(host.url(&format!("/n/{i}"))).send().unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            502 => {}
            s => panic!("GET {i}: {s} {}", r.text().unwrap_or_default()),
        }
    }
    assert!(ok >= 1, "no request reached the live target");
    assert!(ok < requests, "no request met two dead targets");
    assert_eq!(live.hits() as u64, ok);
    let d = app(&host);
    let retries = count(&d, "retries");
    assert!(retries <= requests, "more than one retry per request: {d}");
    assert!(retries >= requests - ok, "each 502 retried once: {d}");
    assert_eq!(attempts(&d), requests + retries, "{d}");
    assert_eq!(count(&d, "retries_refused"), 0, "{d}");
}

/// Eight dead targets and a slow live one, five attempts per request and
/// a budget of 0 %: 32 requests at once, only 3 may be retrying at a time;
/// the rest answer 502 at once instead of trying every target.
#[test]
fn the_budget_stops_a_retry_storm() {
    let live = Upstream::start("live");
    live.set_delay(300);
    let mut targets = dead(8);
    targets.push(live.addr.to_string());
    let host = Host::builder()
        .config(&config(
            &targets,
            "retries = { attempts = 5, budget_percent = 0 }\neject = { failures = 0 }",
        ))
        .start();
    let n = 32;
    let start = Barrier::new(n);
    let began = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..n)
            .map(|i| {
                let start = &start;
                let host = &host;
                s.spawn(move || {
                    let c = client();
                    start.wait();
                    let r = c.get(host.url(&format!("/storm/{i}"))).send();
                    r.map(|r| r.status().as_u16()).expect("an answer")
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let took = began.elapsed();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 502),
        "{statuses:?}"
    );
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(ok >= 1, "{statuses:?}");
    assert!(took < Duration::from_secs(10), "the burst took {took:?}");
    let d = app(&host);
    let (retries, refused) = (count(&d, "retries"), count(&d, "retries_refused"));
    eprintln!("{ok} of {n} answered 200 in {took:?}: {retries} retries, {refused} refused");
    assert!(refused > 0, "the budget refused nothing: {d}");
    assert!(retries < n as u64 * 4, "{d}");
    assert_eq!(attempts(&d), n as u64 + retries, "{d}");
    assert_eq!(live.hits(), ok);
    assert_metric(&host, "kavro_upstream_retries_refused_total", refused);
    assert_metric(&host, "kavro_upstream_retries_total", retries);
}

/// A target that sends the head and the start of the body, then closes
/// (a): the client gets the 200 and a body cut short, and the request is
/// not made again on b, even with `reads = true`.
#[test]
fn an_answer_already_under_way_is_not_retried() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    a.set_partial(true);
    let host = Host::builder()
        .config(&config(
            &[a.addr.to_string(), b.addr.to_string()],
            "retries = { reads = true }\neject = { failures = 0 }",
        ))
        .start();
    let c = client();
    for i in 0..2 {
        let r = until_it_reaches(&a, &b, || {
            c.get(host.url(&format!("/partial/{i}"))).send().unwrap()
        });
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-upstream"], "a");
        let b0 = b.hits();
        match r.bytes() {
            Ok(body) => assert!(body.len() < 1000, "a whole body of {}", body.len()),
            Err(e) => eprintln!("the body was cut short: {e}"),
        }
        assert_eq!(b.hits(), b0, "the request was retried on b");
    }
    assert_eq!(count(&app(&host), "retries"), 0);
    // The host goes on serving.
    a.set_partial(false);
    for _ in 0..2 {
        let r = c.get(host.url("/after")).send().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().unwrap().first(), Some(&b'{'));
    }
}

/// A route sets its own retries over the upstream's: the same hanging-up
/// target is retried for one route (`retries = { reads = true }`) and not
/// for the other.
#[test]
fn a_route_allows_read_retries_its_upstream_does_not() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    a.set_hang_up(true);
    let targets = [a.addr.to_string(), b.addr.to_string()];
    let host = Host::builder()
        .config(&format!(
            "[upstreams.app]\ntargets = [\"{}\", \"{}\"]\neject = {{ failures = 0 }}\n\n\
             [[routes]]\nname = \"patient\"\npath = \"/patient/*\"\nproxy = \"app\"\n\
             retries = {{ reads = true }}\n\n\
             [[routes]]\nname = \"app\"\npath = \"/*\"\nproxy = \"app\"\n",
            targets[0], targets[1]
        ))
        .start();
    let c = client();
    for i in 0..6 {
        let r = c.get(host.url(&format!("/patient/{i}"))).send().unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    }
    let r = until_it_reaches(&a, &b, || c.get(host.url("/other")).send().unwrap());
    assert_eq!(r.status(), 502);
}

/// A target that answers garbage instead of HTTP: 502, a failure counted
/// against it, and the host goes on serving.
#[test]
fn a_target_that_answers_garbage_is_a_502_and_a_failure() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff\xfe garbage\r\n\r\n");
        }
    });
    let host = Host::builder()
        .config(&config(&[addr.to_string()], "eject = { failures = 5 }"))
        .start();
    for _ in 0..3 {
        let r = client().get(host.url("/")).send().unwrap();
        assert_eq!(r.status(), 502, "{}", r.text().unwrap_or_default());
    }
    let d = app(&host);
    assert_eq!(d["targets"][0]["failures"], 3, "{d}");
    assert_eq!(host.admin_json("/status")["status"], "ok");
}
