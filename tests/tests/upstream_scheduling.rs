//! How an upstream spreads requests and how many it takes at once, end to
//! end with real upstream servers: least in flight keeps requests off a
//! slow target, weights split traffic, a hash key pins a session, a full
//! queue sheds 503 with Retry-After, active checks take a target out and
//! bring it back, the Host header sent is the one configured, and a
//! SIGTERM under load lets every accepted request finish.

use std::time::{Duration, Instant};

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, eventually, Host};

/// `[upstreams.app]` with `targets` (TOML array items) and `extra` lines,
/// and one catch-all route proxying to it.
fn config(targets: &[String], extra: &str) -> String {
    format!(
        "[upstreams.app]\ntargets = [{}]\nconnect_timeout_ms = 1000\n{extra}\n\n\
         [[routes]]\nname = \"app\"\npath = \"/*\"\nproxy = \"app\"\n",
        targets.join(", ")
    )
}

/// A target as a TOML array item.
fn plain(u: &Upstream) -> String {
    format!("\"{}\"", u.addr)
}

fn weighted(u: &Upstream, weight: u32) -> String {
    format!("{{ target = \"{}\", weight = {weight} }}", u.addr)
}

/// `/diagnostics` for upstream `app`.
fn app(host: &Host) -> serde_json::Value {
    host.admin_json("/diagnostics")["upstreams"]["app"].clone()
}

/// The diagnostics of one target of `app`.
fn target(host: &Host, u: &Upstream) -> serde_json::Value {
    let addr = u.addr.to_string();
    app(host)["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["target"] == addr.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no target {addr} in /diagnostics"))
}

fn state(host: &Host, u: &Upstream) -> String {
    target(host, u)["state"].as_str().unwrap_or("").to_string()
}

/// A 503's Retry-After, which must be whole seconds, at least 1.
fn retry_after(r: &reqwest::blocking::Response) -> u64 {
    let v = r
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("a 503 without Retry-After: {:?}", r.headers()));
    let secs: u64 = v.to_str().unwrap().parse().expect("Retry-After in seconds");
    assert!(secs >= 1, "Retry-After {secs}");
    secs
}

/// `threads` clients at once (started together), `each` requests apiece
/// to `path`: how many did not answer 200.
fn load(host: &Host, threads: usize, each: usize, path: &str) -> usize {
    kavro_e2e::count_together(threads, each, |c| {
        c.get(host.url(path))
            .send()
            .map_or(true, |r| r.status() != 200)
    })
}

/// The share of requests the slow target of three got under `balance`,
/// 32 clients sending 8 requests each; no request may fail.
fn slow_share(balance: &str) -> f64 {
    let (a, b, slow) = (
        Upstream::start("a"),
        Upstream::start("b"),
        Upstream::start("slow"),
    );
    slow.set_delay(150);
    let host = Host::builder()
        .config(&config(
            &[plain(&a), plain(&b), plain(&slow)],
            &format!("balance = \"{balance}\""),
        ))
        .start();
    assert_eq!(app(&host)["balance"], balance);
    let failed = load(&host, 32, 8, "/");
    assert_eq!(failed, 0, "{balance}: requests failed");
    let total = a.hits() + b.hits() + slow.hits();
    assert_eq!(total, 256, "{balance}: one attempt per request");
    let share = slow.hits() as f64 / total as f64;
    eprintln!("{balance}: the slow target got {share:.2} of the requests");
    share
}

#[test]
fn least_inflight_sends_less_to_a_slow_target_than_round_robin() {
    let rr = slow_share("round_robin");
    assert!(rr >= 0.25, "round robin gave the slow target {rr:.2}");
    let li = slow_share("least_inflight");
    assert!(
        li < rr / 2.0,
        "least_inflight gave the slow target {li:.2}, round robin {rr:.2}"
    );
}

#[test]
fn weights_split_traffic() {
    let (light, heavy) = (Upstream::start("light"), Upstream::start("heavy"));
    let host = Host::builder()
        .config(&config(&[weighted(&light, 1), weighted(&heavy, 3)], ""))
        .start();
    let c = client();
    for _ in 0..80 {
        assert_eq!(c.get(host.url("/")).send().unwrap().status(), 200);
    }
    let (l, h) = (light.hits(), heavy.hits());
    assert_eq!(l + h, 80);
    assert!(l.abs_diff(20) <= 2 && h.abs_diff(60) <= 2, "{l}/{h}");
    assert_eq!(target(&host, &heavy)["requests"], h as u64);
}

/// The upstream that answered (`x-upstream`), with `header` on the request.
fn answered_by(host: &Host, c: &reqwest::blocking::Client, header: Option<(&str, &str)>) -> String {
    let mut req = c.get(host.url("/"));
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let r = req.send().unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["x-upstream"].to_str().unwrap().to_string()
}

#[test]
fn a_hash_key_pins_a_session() {
    let ups = [
        Upstream::start("a"),
        Upstream::start("b"),
        Upstream::start("c"),
    ];
    let targets: Vec<String> = ups.iter().map(plain).collect();
    let host = Host::builder()
        .config(&config(&targets, "hash_on = \"header:x-user\""))
        .start();
    assert_eq!(app(&host)["balance"], "hash");
    let c = client();
    for user in ["ada", "bob", "cy", "dee", "eve"] {
        let seen: std::collections::BTreeSet<String> = (0..10)
            .map(|_| answered_by(&host, &c, Some(("x-user", user))))
            .collect();
        assert_eq!(seen.len(), 1, "user {user} saw {seen:?}");
    }
    // Without the key: round robin over all three.
    let seen: std::collections::BTreeSet<String> =
        (0..6).map(|_| answered_by(&host, &c, None)).collect();
    assert_eq!(seen.len(), 3, "keyless requests saw {seen:?}");
    drop(host);

    let host = Host::builder()
        .config(&config(&targets, "hash_on = \"cookie:sid\""))
        .start();
    let seen: std::collections::BTreeSet<String> = (0..10)
        .map(|_| answered_by(&host, &c, Some(("cookie", "theme=dark; sid=s-42; lang=en"))))
        .collect();
    assert_eq!(seen.len(), 1, "session s-42 saw {seen:?}");
}

/// After a burst: a plain request is let through and nothing is left in
/// flight or queued.
fn slots_released(host: &Host) {
    let r = client().get(host.url("/")).send().unwrap();
    assert_eq!(r.status(), 200, "a request after the burst");
    eventually("nothing in flight or queued", || {
        let d = app(host);
        (d["inflight"] == 0 && d["queued"] == 0).then_some(())
    });
}

#[test]
fn a_full_queue_sheds_with_retry_after_and_nothing_hangs() {
    let up = Upstream::start("a");
    up.set_delay(600);
    let host = Host::builder()
        .config(&config(
            &[plain(&up)],
            "max_inflight = 2\nmax_queue = 2\nqueue_timeout_ms = 2000",
        ))
        .start();
    let (answers, took) = kavro_e2e::burst(&host, 12, "/");
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    assert!(ok >= 4, "{answers:?}");
    for (status, wait, body) in &answers {
        match status {
            200 => {}
            503 => {
                assert!(wait.is_some());
                assert!(body.contains("queue is full"), "{body}");
            }
            s => panic!("status {s}: {body}"),
        }
    }
    assert!(ok < 12, "none was shed: {answers:?}");
    assert!(took < Duration::from_secs(5), "the burst took {took:?}");
    let d = app(&host);
    assert_eq!(d["max_inflight"], 2);
    assert_eq!(d["max_queue"], 2);
    assert!(d["shed"].as_u64().unwrap() >= 1, "{d}");
    assert_eq!(d["shed"].as_u64().unwrap() as usize, 12 - ok, "{d}");
    up.set_delay(0);
    slots_released(&host);
    let metrics = host.metrics();
    let line = format!("kavro_upstream_shed_total{{upstream=\"app\"}} {}", 12 - ok);
    assert!(metrics.contains(&line), "no `{line}` in\n{metrics}");
    drop(host);

    // The wait runs out: one request holds the only slot for 1 s, the
    // queued ones give up after 200 ms.
    up.set_delay(1000);
    let host = Host::builder()
        .config(&config(
            &[plain(&up)],
            "max_inflight = 1\nmax_queue = 10\nqueue_timeout_ms = 200",
        ))
        .start();
    let (answers, took) = kavro_e2e::burst(&host, 4, "/");
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    assert!(ok >= 1, "{answers:?}");
    let ran_out = answers
        .iter()
        .filter(|(s, w, body)| *s == 503 && w.is_some() && body.contains("the wait ran out"))
        .count();
    assert!(ran_out >= 1, "{answers:?}");
    assert_eq!(ok + ran_out, 4, "{answers:?}");
    assert!(took < Duration::from_secs(5), "the burst took {took:?}");
    let d = app(&host);
    assert!(d["queue_timeouts"].as_u64().unwrap() >= 1, "{d}");
    up.set_delay(0);
    slots_released(&host);
}

#[test]
fn active_checks_take_a_target_out_and_bring_it_back() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let host = Host::builder()
        .config(&config(
            &[plain(&a), plain(&b)],
            "check = { path = \"/ready\", interval_ms = 200, timeout_ms = 500, fall = 2, rise = 2 }",
        ))
        .start();
    eventually("checks reach both targets", || {
        (a.checks() > 0 && b.checks() > 0).then_some(())
    });
    assert_eq!(b.check_agent().as_deref(), Some("kavro-check"));
    assert_eq!(state(&host, &b), "up");
    assert_eq!((a.hits(), b.hits()), (0, 0), "checks are not traffic");

    b.set_ready(false);
    eventually("b is down", || (state(&host, &b) == "down").then_some(()));
    let t = target(&host, &b);
    assert!(t["check_failures"].as_u64().unwrap() >= 2, "{t}");
    let metrics = host.metrics();
    let line = format!(
        "kavro_upstream_target_up{{upstream=\"app\",target=\"{}\"}} 0",
        b.addr
    );
    assert!(metrics.contains(&line), "no `{line}` in\n{metrics}");

    let c = client();
    let (a_before, b_before) = (a.hits(), b.hits());
    for _ in 0..20 {
        let r = c.get(host.url("/")).send().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-upstream"], "a");
    }
    assert_eq!(a.hits(), a_before + 20);
    assert_eq!(b.hits(), b_before, "a down target got requests");

    b.set_ready(true);
    eventually("b is up again", || (state(&host, &b) == "up").then_some(()));
    eventually("b serves again", || {
        assert_eq!(c.get(host.url("/")).send().unwrap().status(), 200);
        (b.hits() > b_before).then_some(())
    });
}

#[test]
fn all_targets_down_by_check_answers_503_at_once() {
    let up = Upstream::start("a");
    up.set_ready(false);
    let host = Host::builder()
        .config(&config(
            &[plain(&up)],
            "check = { path = \"/ready\", interval_ms = 200, timeout_ms = 500, fall = 2, rise = 2 }",
        ))
        .start();
    eventually("the target is down", || {
        (state(&host, &up) == "down").then_some(())
    });
    let hits = up.hits();
    let started = Instant::now();
    let r = client().get(host.url("/")).send().unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503);
    retry_after(&r);
    let body = r.text().unwrap();
    assert!(body.contains("upstream `app`"), "{body}");
    assert!(took < Duration::from_secs(1), "the 503 took {took:?}");
    assert_eq!(up.hits(), hits, "a down target got the request");
}

#[test]
fn host_header_choices() {
    let up = Upstream::start("a");
    let c = client();
    for (setting, expected) in [
        ("", "client.example".to_string()),
        ("host_header = \"client\"", "client.example".to_string()),
        ("host_header = \"target\"", up.addr.to_string()),
        (
            "host_header = { fixed = \"api.example\" }",
            "api.example".to_string(),
        ),
    ] {
        let host = Host::builder()
            .config(&config(&[plain(&up)], setting))
            .start();
        let r = c
            .get(host.url("/"))
            .header("host", "client.example")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{setting}");
        let echo: serde_json::Value = r.json().unwrap();
        let h = &echo["headers"];
        assert_eq!(
            h["host"],
            serde_json::json!([expected]),
            "{setting}: {echo}"
        );
        assert_eq!(
            h["x-forwarded-host"],
            serde_json::json!(["client.example"]),
            "{setting}: {echo}"
        );
    }
}

#[test]
fn sigterm_under_load_completes_accepted_requests() {
    let up = Upstream::start("a");
    up.set_delay(300);
    let mut host = Host::builder()
        .config(&config(&[plain(&up)], "max_inflight = 8"))
        .start();
    let url = host.url("/");
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                client()
                    .get(url)
                    .send()
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    eventually("16 requests accepted", || {
        let d = app(&host);
        let held = d["inflight"].as_u64()? + d["queued"].as_u64()?;
        (held == 16).then_some(())
    });
    let status = host.terminate(Duration::from_secs(8));
    let answers: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(
        answers.iter().all(|a| a == &Ok(200)),
        "{answers:?}\n{}",
        host.log()
    );
    assert!(status.success(), "exit {status}\n{}", host.log());
    assert_eq!(up.hits(), 16);
}

/// A prepare plugin's forward goes through the upstream's machinery: the
/// `router` plugin forwards with `x-kavro-upstream: app`. Hashed on that
/// header, every forwarded request reaches one target, though clients
/// send no such header; and a forward retried after a refused connection
/// still carries the forward's headers.
#[test]
fn a_forward_pins_its_session_and_keeps_its_headers_on_a_retry() {
    let (a, b, c) = (
        Upstream::start("a"),
        Upstream::start("b"),
        Upstream::start("c"),
    );
    let router = "split = \"app:100\"";
    let host = Host::builder()
        .plugin("router", "router")
        .config(&kavro_e2e::with_plugin(
            &config(
                &[plain(&a), plain(&b), plain(&c)],
                "hash_on = \"header:x-kavro-upstream\"",
            ),
            "router",
            router,
        ))
        .start();
    let cl = client();
    let seen: std::collections::HashSet<String> = (0..12)
        .map(|i| {
            let r = cl.get(host.url(&format!("/pin?{i}"))).send().unwrap();
            assert_eq!(r.status(), 200);
            r.headers()["x-upstream"].to_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(seen.len(), 1, "one target for the forward's key: {seen:?}");

    // Round robin over a dead target and a live one: half the forwards
    // are refused first and retried.
    let dead = format!("\"127.0.0.1:{}\"", kavro_e2e::free_port());
    let host = Host::builder()
        .plugin("router", "router")
        .config(&kavro_e2e::with_plugin(
            &config(&[dead, plain(&b)], "eject = { failures = 0 }"),
            "router",
            router,
        ))
        .start();
    for _ in 0..6 {
        let r = cl.get(host.url("/retried")).send().unwrap();
        assert_eq!(r.status(), 200);
        let echo: serde_json::Value = r.json().unwrap();
        assert_eq!(echo["headers"]["x-kavro-upstream"][0], "app", "{echo}");
    }
    let d = host.admin_json("/diagnostics");
    assert!(
        d["upstreams"]["app"]["retries"].as_u64().unwrap() >= 3,
        "{d}"
    );
}
