//! A hostile plugin is contained: loops end at the deadline without holding
//! a worker, traps and limit hits fail only their request by the plugin's
//! policy, bad output is refused, a denied capability is an error to the
//! plugin, every failure is counted by kind, and the host keeps serving.

use std::sync::atomic::{AtomicUsize, Ordering};

use kavro_e2e::{client, eventually, Host};

const ROUTES: &str = r#"
[[routes]]
name = "root"
path = "/*"
respond = { status = 200, headers = { content-type = "text/plain" }, body = "ok\n" }
"#;

fn hostile_host(settings: &str) -> Host {
    Host::builder()
        .plugin("hostile", "hostile")
        .settings("hostile", settings)
        .config(ROUTES)
        .start()
}

fn ask(host: &Host, mode: &str) -> (u16, String) {
    let r = client()
        .get(host.url("/"))
        .header("x-hostile", mode)
        .header("x-request-id", format!("req-{mode}"))
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// kavro_plugin_failures_total for the hostile plugin and `kind`.
fn failures(host: &Host, kind: &str) -> u64 {
    let text = host.metrics();
    text.lines()
        .filter(|l| l.starts_with("kavro_plugin_failures_total{"))
        .filter(|l| l.contains(&format!("kind=\"{kind}\"")) && l.contains("plugin=\"hostile\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Instances of the hostile plugin dropped so far: created and no longer live.
fn instances_dropped(host: &Host) -> u64 {
    let v: serde_json::Value = host.admin_json("/plugins");
    let p = &v["plugins"][0];
    p["instances_created"].as_u64().unwrap() - p["instances_live"].as_u64().unwrap()
}

fn assert_fails_closed(host: &Host, mode: &str) {
    let (status, body) = ask(host, mode);
    assert_eq!(status, 500, "{mode}: {body}");
    assert!(body.contains("plugin `hostile`"), "{mode}: {body}");
    assert!(body.contains(&format!("req-{mode}")), "{mode}: {body}");
    assert_eq!(ask(host, "none"), (200, "ok\n".to_string()), "after {mode}");
}

#[test]
fn loops_in_every_phase_end_at_the_deadline() {
    let host = hostile_host("[limits]\ndeadline_ms = 50\n");
    for mode in ["loop-prime", "loop-prepare", "loop-present", "loop-package"] {
        assert_fails_closed(&host, mode);
    }
    // A post failure is only counted: the response was already written.
    assert_eq!(ask(&host, "loop-post"), (200, "ok\n".to_string()));
    eventually("five deadline failures", || {
        (failures(&host, "deadline") == 5).then_some(())
    });
    host.assert_logged("deadline exceeded");
}

#[test]
fn a_looping_plugin_does_not_hold_the_workers() {
    // Loops run to a 2 s deadline on a host with two worker threads; well-
    // behaved requests must all finish while the loops are still running.
    let host = hostile_host("[limits]\ndeadline_ms = 2000\n");
    let looping = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                looping.fetch_add(1, Ordering::SeqCst);
                let (status, _) = ask(&host, "loop-prime");
                looping.fetch_sub(1, Ordering::SeqCst);
                assert_eq!(status, 500);
            });
        }
        eventually("four loops in flight", || {
            (looping.load(Ordering::SeqCst) == 4).then_some(())
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        for _ in 0..20 {
            assert_eq!(ask(&host, "none"), (200, "ok\n".to_string()));
        }
        assert!(
            looping.load(Ordering::SeqCst) > 0,
            "the well-behaved requests only got through after the loops ended"
        );
    });
    assert_eq!(failures(&host, "deadline"), 4);
    // The loops finished on the slow lane; the short calls stayed put, but
    // for at most the first call on the warm instance, which sets the
    // plugin up and on a loaded machine can use more than `worker_cpu`
    // (seen once in CI).
    let d: serde_json::Value = host.admin_json("/diagnostics");
    let slow = d["plugins"][0]["slow_calls"].as_u64().unwrap();
    assert!((4..=5).contains(&slow), "{d}");
}

#[test]
fn worker_cpu_sets_when_a_long_call_leaves_its_worker() {
    let slow_calls =
        |host: &Host| host.admin_json("/diagnostics")["plugins"][0]["slow_calls"].clone();
    // Default: a loop moves to the slow lane, a short call never does.
    let host = hostile_host("[limits]\ndeadline_ms = 50\n");
    assert_fails_closed(&host, "loop-prime");
    assert_eq!(slow_calls(&host), 1);
    // A plugin allowed more CPU on the workers than its deadline gives it
    // ends there, by the same deadline.
    let host = hostile_host("[limits]\ndeadline_ms = 50\nworker_cpu_us = 10000000\n");
    assert_fails_closed(&host, "loop-prime");
    assert_eq!(slow_calls(&host), 0);
    assert_eq!(failures(&host, "deadline"), 1);
}

#[test]
fn a_long_call_starved_on_the_slow_lane_is_not_failed_for_it() {
    // A call that computes past worker_cpu moves to the idle-priority lane;
    // while normal-priority work keeps every core busy the lane gets no
    // CPU. The wait is the host's: the call still succeeds, though it ends
    // long after its 200 ms deadline. (The deadline leaves room for the
    // lane's pauses once a call is 2 ms old: a 3 ms call takes tens.)
    let host = hostile_host("[limits]\ndeadline_ms = 200\n");
    assert_eq!(ask(&host, "busy-prime"), (200, "ok\n".to_string()));
    // Whether this first call moved depends on where the epoch's ticks
    // fell on a busy machine.
    let slow_calls = |host: &Host| {
        host.admin_json("/diagnostics")["plugins"][0]["slow_calls"]
            .as_u64()
            .expect("slow_calls")
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // The epoch's ticker competes with the spinners too: on a loaded
    // machine a starved call may finish on its worker before any tick
    // reaches it (seen once in CI). Starve calls until one moves, then the
    // question is only whether any was failed.
    let mut moved = false;
    for _ in 0..5 {
        let moved_before = slow_calls(&host);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..cores {
                s.spawn(|| {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i = std::hint::black_box(i.wrapping_add(1));
                    }
                });
            }
            let spinning_until = std::time::Instant::now() + std::time::Duration::from_millis(600);
            std::thread::sleep(std::time::Duration::from_millis(30));
            let answer = s.spawn(|| ask(&host, "busy-prime"));
            std::thread::sleep(spinning_until - std::time::Instant::now());
            stop.store(true, Ordering::Relaxed);
            assert_eq!(answer.join().unwrap(), (200, "ok\n".to_string()));
        });
        if slow_calls(&host) > moved_before {
            moved = true;
            break;
        }
    }
    let d: serde_json::Value = host.admin_json("/diagnostics");
    assert_eq!(d["plugins"][0]["errors"]["deadline"], 0, "{d}");
    assert!(
        moved,
        "no starved call moved to the slow lane in 5 tries: {d}"
    );
}

#[test]
fn an_instance_whose_memory_keeps_growing_is_replaced_before_it_fails() {
    // A MiB leaked per request under a 16 MiB cap: by default the instance
    // is replaced once it has grown 4 MiB after its first request, so no
    // request meets the cap.
    let host = hostile_host("[limits]\nmemory_mb = 16\n");
    for _ in 0..40 {
        assert_eq!(ask(&host, "leak"), (200, "ok\n".to_string()));
    }
    let d: serde_json::Value = host.admin_json("/diagnostics");
    let p = &d["plugins"][0];
    assert_eq!(p["errors"]["memory"], 0, "{d}");
    assert!(
        p["instances"]["replaced_grown"].as_u64().unwrap() >= 6,
        "{d}"
    );

    // With replacement off, the same traffic meets the cap.
    let host = hostile_host("[limits]\nmemory_mb = 16\nmax_growth_mb = 0\n");
    let failed = (0..40).filter(|_| ask(&host, "leak").0 != 200).count();
    assert!(failed >= 1, "the leak never met the cap");
    assert!(failures(&host, "memory") >= 1);
}

#[test]
fn traps_memory_bombs_and_stack_overflows_discard_the_instance() {
    // A deadline the memory bomb cannot meet first on a busy machine (it
    // finishes on the throttled slow lane): this test is about the kind.
    let host = hostile_host("[limits]\nmemory_mb = 16\ndeadline_ms = 2000\n");
    for (mode, kind) in [("trap", "trap"), ("memory", "memory"), ("stack", "trap")] {
        assert_eq!(ask(&host, "none").0, 200);
        let before = instances_dropped(&host);
        assert_fails_closed(&host, mode);
        // The instance that failed was thrown away, not pooled again. Its
        // request lets go of it just after the response (post runs then),
        // and a spare instance may serve the next request meanwhile.
        let dropped = eventually("the failed instance to be dropped", || {
            let d = instances_dropped(&host);
            (d > before).then_some(d)
        });
        assert_eq!(dropped, before + 1, "{mode}");
        assert!(failures(&host, kind) >= 1, "{mode} not counted as {kind}");
        let plugins: serde_json::Value = host.admin_json("/plugins");
        let last = &plugins["plugins"][0]["last_error"];
        assert_eq!(last["kind"], kind, "{last}");
        assert_eq!(last["phase"], "prime", "{last}");
        if mode == "trap" {
            let detail = last["detail"].as_str().unwrap();
            assert!(detail.contains("hostile: trap on purpose"), "{detail}");
        }
    }
    assert_eq!(failures(&host, "memory"), 1);
    assert_eq!(failures(&host, "trap"), 2);
    // The panic's own message and location, through the SDK's panic hook.
    host.assert_logged("the plugin reported: panicked at");
    host.assert_logged("hostile: trap on purpose");

    // The same, per plugin and kind, in /diagnostics, beside host-wide figures.
    let d: serde_json::Value = host.admin_json("/diagnostics");
    let p = &d["plugins"][0];
    assert_eq!(p["name"], "hostile");
    assert_eq!(p["errors"]["trap"], 2, "{d}");
    assert_eq!(p["errors"]["memory"], 1, "{d}");
    assert_eq!(p["errors"]["deadline"], 0, "{d}");
    assert!(p["calls"].as_u64().unwrap() > 10, "{d}");
    assert!(p["call_us"]["p50"].as_f64().unwrap() > 0.0, "{d}");
    assert!(
        p["call_us"]["p99"].as_f64().unwrap() >= p["call_us"]["p50"].as_f64().unwrap(),
        "{d}"
    );
    assert!(p["instances"]["pooled"].as_u64().unwrap() >= 1, "{d}");
    assert_eq!(d["responses"]["5xx"], 3, "{d}");
    assert!(d["responses"]["2xx"].as_u64().unwrap() >= 6, "{d}");
    assert!(d["latency_us"]["p99"].as_f64().unwrap() > 0.0, "{d}");
}

#[test]
fn output_that_http_cannot_carry_is_refused() {
    let host = hostile_host("");
    for mode in [
        "huge-body",
        "bad-header",
        "bad-status",
        "bad-uri",
        "undeclared",
    ] {
        assert_fails_closed(&host, mode);
    }
    assert_eq!(failures(&host, "bad-output"), 5);
    host.assert_logged("invalid status 42");

    // Thousands of headers: the host stops the plugin at its limit and the
    // response goes out with the ones allowed (read raw: HTTP clients
    // commonly refuse responses with more than 100 headers).
    let raw =
        host.raw(b"GET / HTTP/1.1\r\nHost: x\r\nx-hostile: headers\r\nConnection: close\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let flood = raw.lines().filter(|l| l.starts_with("x-flood-")).count();
    assert_eq!(flood, 100);
}

#[test]
fn a_denied_capability_is_an_error_to_the_plugin() {
    let host = hostile_host("");
    let (status, body) = ask(&host, "denied");
    assert_eq!(status, 200);
    assert!(body.starts_with("refused: HostError::Denied"), "{body}");
    assert!(body.contains("was not granted `kv`"), "{body}");
}

#[test]
fn fail_open_skips_the_failing_plugin() {
    let host = hostile_host("failure = \"fail-open\"\n[limits]\ndeadline_ms = 50\n");
    for mode in ["trap", "loop-prime", "bad-status", "loop-package"] {
        assert_eq!(ask(&host, mode), (200, "ok\n".to_string()), "{mode}");
    }
    assert_eq!(failures(&host, "deadline"), 2);
}

#[test]
fn body_and_header_limits_are_per_plugin() {
    let host = hostile_host("[limits]\nmax_headers = 10\nmax_body_kb = 16384\n");
    let raw =
        host.raw(b"GET / HTTP/1.1\r\nHost: x\r\nx-hostile: headers\r\nConnection: close\r\n\r\n");
    assert_eq!(
        raw.lines().filter(|l| l.starts_with("x-flood-")).count(),
        10
    );
    // 8 MiB is over the default (1 MiB) but within this plugin's 16 MiB.
    let r = client()
        .get(host.url("/"))
        .header("x-hostile", "huge-body")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().len(), 8 << 20);
}

#[test]
fn a_present_loop_on_a_proxied_response_ends_at_its_deadline() {
    // Present on a streamed proxy response runs in Pingora's synchronous
    // body filter; its deadline must still end it, and the host serve on.
    let up = kavro_e2e::upstream::Upstream::start("app");
    let host = Host::builder()
        .plugin("hostile", "hostile")
        .settings("hostile", "[limits]\ndeadline_ms = 50\n")
        .config(&kavro_e2e::proxy_to_upstreams(
            &[("app", up.addr.to_string())],
            5000,
        ))
        .start();
    let r = client()
        .get(host.url("/x"))
        .header("x-hostile", "loop-present")
        .send()
        .unwrap();
    // The head went out before the body; what follows it is the error text.
    let text = r.text().unwrap();
    assert!(text.contains("plugin `hostile`"), "{text}");
    assert_eq!(failures(&host, "deadline"), 1);
    assert_eq!(client().get(host.url("/y")).send().unwrap().status(), 200);
}

/// WASI grants nothing by default; `env` and `dirs` grant exactly what they
/// name, directories read-only.
#[test]
fn environment_and_directories_only_as_granted() {
    let ask =
        |host: &Host, path: &str| client().get(host.url(path)).send().unwrap().text().unwrap();

    let bare = Host::builder()
        .plugin("wasi-reader", "reader")
        .env("KAVRO_TEST_SECRET", "s3cret")
        .start();
    assert_eq!(ask(&bare, "/env/KAVRO_TEST_SECRET"), "unset");
    assert_eq!(ask(&bare, "/env/PATH"), "unset");
    assert!(ask(&bare, "/read?/etc/hostname").starts_with("error"));
    assert!(ask(&bare, "/list?/").starts_with("error"));

    let granted = Host::builder()
        .plugin("wasi-reader", "reader")
        .env("KAVRO_TEST_SECRET", "s3cret")
        .config(
            "[[plugins]]\nname = \"reader\"\nenv = [\"KAVRO_TEST_SECRET\"]\n\
             [plugins.dirs]\n\"/data\" = \"data\"\n",
        );
    let data = granted.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("greeting.txt"), "hello from the host").unwrap();
    std::fs::write(granted.dir.path().join("outside.txt"), "private").unwrap();
    let granted = granted.start();
    assert_eq!(ask(&granted, "/env/KAVRO_TEST_SECRET"), "s3cret");
    assert_eq!(
        ask(&granted, "/env/PATH"),
        "unset",
        "only the variables named"
    );
    assert_eq!(
        ask(&granted, "/read?/data/greeting.txt"),
        "hello from the host"
    );
    assert_eq!(ask(&granted, "/list?/data"), "greeting.txt");
    assert!(
        ask(&granted, "/write?/data/new.txt").starts_with("error"),
        "read-only"
    );
    assert!(!data.join("new.txt").exists());
    assert!(ask(&granted, "/read?/data/../outside.txt").starts_with("error"));
    assert!(ask(&granted, "/read?/etc/hostname").starts_with("error"));
}

#[test]
fn an_env_var_missing_from_the_host_or_a_missing_dir_is_refused() {
    let b = Host::builder().plugin("wasi-reader", "reader").config(
        "[[plugins]]\nname = \"reader\"\nenv = [\"KAVRO_SURELY_UNSET_VAR\"]\n\
         [plugins.dirs]\n\"/data\" = \"no-such-dir\"\n",
    );
    let (ok, out) = b.validate();
    assert!(!ok, "{out}");
    assert!(out.contains("KAVRO_SURELY_UNSET_VAR` is not set"), "{out}");
    assert!(out.contains("plugins[0].dirs./data"), "{out}");
}

/// Outbound HTTP reaches declared upstreams only, when granted, within the
/// plugin's deadline.
#[test]
fn outbound_http_only_to_declared_upstreams_and_only_when_granted() {
    let up = kavro_e2e::upstream::Upstream::start("backend");
    let config = |grant: &str| {
        format!(
            "[upstreams.backend]\ntargets = [\"{}\"]\n\n{}\n[[plugins]]\nname = \"fetcher\"\n{grant}\n",
            up.addr,
            kavro_e2e::respond_route("root", "/*", "root")
        )
    };
    let ask = |host: &Host, path: &str| {
        let r = client().get(host.url(path)).send().unwrap();
        let status = r
            .headers()
            .get("x-fetched-status")
            .map(|v| v.to_str().unwrap().to_string());
        (status, r.text().unwrap())
    };

    let denied = Host::builder()
        .plugin("fetcher", "fetcher")
        .config(&config(""))
        .start();
    let (_, body) = ask(&denied, "/fetch/backend/hello");
    assert!(
        body.contains("Denied") && body.contains("not granted `http`"),
        "{body}"
    );
    assert_eq!(up.hits(), 0);

    let host = Host::builder()
        .plugin("fetcher", "fetcher")
        .config(&config("capabilities = [\"http\"]"))
        .start();
    let (status, body) = ask(&host, "/fetch/backend/hello?x=1");
    assert_eq!(status.as_deref(), Some("200"));
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["uri"], "/hello?x=1");
    assert_eq!(up.hits(), 1);

    let (_, body) = ask(&host, "/fetch/elsewhere/hello");
    assert!(body.contains("is not declared"), "{body}");

    // The default deadline is 100 ms: a slow upstream is cut off, and the
    // plugin gets an error, not the host a stuck worker.
    let (_, body) = ask(&host, "/fetch/backend/slow?ms=2000");
    assert!(body.contains("did not answer within"), "{body}");
}

/// A plugin's outbound HTTP goes through the upstream's machinery: a dead
/// target it meets counts a failure and is ejected, after which every
/// fetch reaches the live one; the requests count on /diagnostics.
#[test]
fn outbound_http_follows_the_upstreams_health() {
    let live = kavro_e2e::upstream::Upstream::start("live");
    let dead = format!("127.0.0.1:{}", kavro_e2e::free_port());
    let host = Host::builder()
        .plugin("fetcher", "fetcher")
        .config(&format!(
            "[upstreams.backend]\ntargets = [\"{dead}\", \"{}\"]\n\
             eject = {{ failures = 1, base_ms = 60000, max_ms = 60000 }}\n\n{}\n\
             [[plugins]]\nname = \"fetcher\"\ncapabilities = [\"http\"]\n\
             limits = {{ deadline_ms = 2000 }}\n",
            live.addr,
            kavro_e2e::respond_route("root", "/*", "root")
        ))
        .start();
    let fetched = |_: &u32| {
        let r = client()
            .get(host.url("/fetch/backend/hello"))
            .send()
            .unwrap();
        r.headers().contains_key("x-fetched-status")
    };
    // Round robin offers the dead target once, within the first two
    // fetches; that failure ejects it.
    let ok = (0..10).filter(fetched).count();
    assert_eq!(ok, 9, "{ok} of 10 fetched");
    let d = host.admin_json("/diagnostics");
    let targets = d["upstreams"]["backend"]["targets"].as_array().unwrap();
    let of = |t: &str| targets.iter().find(|x| x["target"] == t).unwrap().clone();
    assert_eq!(of(&dead)["state"], "ejected", "{d}");
    assert_eq!(of(&live.addr.to_string())["requests"], 9, "{d}");
    assert_eq!(live.hits(), 9);
}

#[test]
fn a_plugin_that_fails_every_request_is_backed_off_then_tried_again() {
    let host = hostile_host("");
    let plugin = || host.admin_json("/plugins")["plugins"][0].clone();
    assert_eq!(ask(&host, "none").0, 200);
    let created = plugin()["instances_created"].as_u64().unwrap();
    // Every request traps and loses its instance: past five in a row, the
    // failure policy answers without making new instances for a while.
    for _ in 0..40 {
        assert_eq!(ask(&host, "trap").0, 500);
    }
    host.assert_logged("keeps failing and losing its instance");
    let p = plugin();
    let made = p["instances_created"].as_u64().unwrap() - created;
    // The first trap takes the warm instance; four more are made.
    assert!(
        (4..20).contains(&made),
        "{made} instances made for 40 traps: {p}"
    );
    assert!(p["backoff"]["engaged"].as_u64().unwrap() >= 1, "{p}");
    assert!(failures(&host, "backoff") >= 20, "{p}");
    // What the operator reads is the plugin's error, not the back-off.
    assert_eq!(p["last_error"]["kind"], "trap", "{p}");
    // Once it is over, the next request tries the plugin again; a success
    // ends it.
    eventually("the back-off to run out", || {
        plugin()["backoff"]["remaining_ms"].is_null().then_some(())
    });
    assert_eq!(ask(&host, "none"), (200, "ok\n".to_string()));
    assert_eq!(plugin()["backoff"]["consecutive_failures"], 0);
}
