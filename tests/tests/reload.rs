//! Reloading while serving: config and plugins change through POST /reload
//! and SIGHUP; invalid input is refused and the running set keeps serving;
//! KV data survives; requests in flight finish on the set they started with.

use kavro_e2e::upstream::Upstream;
use std::sync::atomic::{AtomicUsize, Ordering};

use kavro_e2e::{client, eventually, eventually_within, proxy_to_upstreams, respond_route, Host};

/// How long a test waits for a compile of a large component.
const LONG: std::time::Duration = std::time::Duration::from_secs(180);

/// The route every reload test starts from.
fn hello() -> String {
    respond_route("hello", "/hello", "hello v1")
}

fn body(host: &Host, path: &str) -> (u16, String) {
    let r = client().get(host.url(path)).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn a_config_reload_adds_a_route_and_a_broken_one_changes_nothing() {
    let host = Host::builder().config(&hello()).start();
    assert_eq!(body(&host, "/bye").0, 404);

    let added = format!("{}\n{}", hello(), respond_route("bye", "/bye", "bye"));
    std::fs::write(host.config_path(), &added).unwrap();
    let (status, out) = host.reload();
    assert_eq!(status, 200, "{out}");
    assert_eq!(body(&host, "/bye"), (200, "bye".to_string()));

    // A syntax error and an undeclared upstream are refused, with the line.
    std::fs::write(
        host.config_path(),
        format!("{added}\n[[routes]\npath = \"/x\"\n"),
    )
    .unwrap();
    let (status, out) = host.reload();
    assert_eq!(status, 422, "{out}");
    assert!(
        out["errors"][0].as_str().unwrap().contains("kavro.toml:"),
        "{out}"
    );
    std::fs::write(
        host.config_path(),
        format!("{added}\n[[routes]]\npath = \"/x\"\nproxy = \"ghost\"\n"),
    )
    .unwrap();
    let (status, out) = host.reload();
    assert_eq!(status, 422, "{out}");
    assert!(
        out.to_string().contains("upstream `ghost` is not declared"),
        "{out}"
    );
    // The running set stays, and the refusal is on /status.
    assert_eq!(body(&host, "/bye"), (200, "bye".to_string()));
    assert_eq!(body(&host, "/hello"), (200, "hello v1".to_string()));
    let status: serde_json::Value = host.admin_json("/status");
    assert_eq!(status["last_refusal"]["result"], "refused");
    assert!(
        status["last_refusal"]["errors"]
            .to_string()
            .contains("ghost"),
        "{status}"
    );
}

#[test]
fn sighup_swaps_plugins_keeps_kv_and_refuses_a_broken_component() {
    let up = Upstream::start("app");
    let config = format!(
        "{}\n[[plugins]]\nname = \"probe\"\ncapabilities = [\"kv\"]\n",
        proxy_to_upstreams(&[("app", up.addr.to_string())], 5000)
    );
    let host = Host::builder()
        .plugin("probe", "probe")
        .plugin("headers", "headers")
        .settings("headers", "[config]\nresponse_set = \"x-version: 1\"\n")
        .config(&config)
        .start();
    let c = client();
    let version = || {
        c.get(host.url("/x")).send().unwrap().headers()["x-version"]
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(version(), "1");
    assert_eq!(body(&host, "/kv/incr").1, "1");
    assert_eq!(body(&host, "/kv/incr").1, "2");

    std::fs::write(
        host.plugins_dir().join("headers.toml"),
        "[config]\nresponse_set = \"x-version: 2\"\n",
    )
    .unwrap();
    host.sighup();
    eventually("version 2 to serve", || (version() == "2").then_some(()));
    // The KV store's data survived the swap.
    assert_eq!(body(&host, "/kv/incr").1, "3");

    // A component that does not load is refused; version 2 keeps serving.
    std::fs::write(
        host.plugins_dir().join("broken.wasm"),
        b"\0asm\x01\0\0\0garbage",
    )
    .unwrap();
    host.sighup();
    host.assert_logged("reload refused");
    host.assert_logged("broken.wasm");
    assert_eq!(version(), "2");
    let refusal = host.admin_json("/plugins")["last_refusal"].to_string();
    assert!(
        refusal.contains("broken.wasm") && refusal.contains("refused"),
        "{refusal}"
    );

    // Removing the broken file and the headers plugin: it is gone after a reload.
    std::fs::remove_file(host.plugins_dir().join("broken.wasm")).unwrap();
    std::fs::remove_file(host.plugins_dir().join("headers.wasm")).unwrap();
    let (status, out) = host.reload();
    assert_eq!(status, 200, "{out}");
    let r = c.get(host.url("/x")).send().unwrap();
    assert!(r.headers().get("x-version").is_none());
    let plugins: serde_json::Value = host.admin_json("/plugins");
    assert_eq!(plugins["plugins"].as_array().unwrap().len(), 1, "{plugins}");
}

#[test]
fn a_request_in_flight_finishes_on_the_set_it_started_with() {
    let slow = Upstream::start("slow");
    let config = |v: &str| {
        format!(
            "{}\n[[plugins]]\nname = \"headers\"\n[plugins.config]\nresponse_set = \"x-version: {v}\"\n",
            proxy_to_upstreams(&[("app", slow.addr.to_string())], 10_000)
        )
    };
    let host = Host::builder()
        .plugin("headers", "headers")
        .config(&config("1"))
        .start();
    std::thread::scope(|s| {
        // Held at the upstream for 1.5 s, across the swap below.
        let held = s.spawn(|| {
            let r = client().get(host.url("/slow?ms=1500")).send().unwrap();
            r.headers()["x-version"].to_str().unwrap().to_string()
        });
        eventually("the slow request to reach the upstream", || {
            (slow.hits() == 1).then_some(())
        });
        std::fs::write(host.config_path(), config("2")).unwrap();
        assert_eq!(host.reload().0, 200);
        let fresh = client().get(host.url("/now")).send().unwrap();
        assert_eq!(fresh.headers()["x-version"], "2");
        assert_eq!(
            held.join().unwrap(),
            "1",
            "the request in flight changed version"
        );
    });
}

#[test]
fn file_changes_in_the_plugins_folder_reload_by_themselves() {
    let host = Host::builder()
        .plugin("headers", "headers")
        .settings("headers", "[config]\nresponse_set = \"x-version: 1\"\n")
        .config(&hello())
        .start();
    let c = client();
    let version = || {
        c.get(host.url("/hello"))
            .send()
            .unwrap()
            .headers()
            .get("x-version")
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(version().as_deref(), Some("1"));
    std::fs::write(
        host.plugins_dir().join("headers.toml"),
        "[config]\nresponse_set = \"x-version: 2\"\n",
    )
    .unwrap();
    eventually("the settings change to take effect", || {
        (version().as_deref() == Some("2")).then_some(())
    });

    // A new plugin: its settings, then the component, copied in.
    std::fs::write(
        host.plugins_dir().join("probe.toml"),
        "capabilities = [\"kv\"]\n",
    )
    .unwrap();
    std::fs::copy(
        kavro_e2e::wasm("probe"),
        host.plugins_dir().join("probe.wasm"),
    )
    .unwrap();
    eventually("the new plugin to answer", || {
        (body(&host, "/kv/incr") == (200, "1".to_string())).then_some(())
    });

    // Reading the files is no change: a reload does not set off another.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let reloads = host.log().matches("reloaded:").count();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert_eq!(
        host.log().matches("reloaded:").count(),
        reloads,
        "{}",
        host.log()
    );
}

#[test]
fn fifty_swaps_under_load_fail_no_request_and_never_mix_versions() {
    // Two components under one name: `probe` marks responses with
    // x-probe-phases, `headers` (configured below) with x-version.
    let host = Host::builder()
        .plugin("probe", "ver")
        .settings(
            "ver",
            "capabilities = [\"kv\"]\n[config]\nresponse_set = \"x-version: headers\"\n",
        )
        .config(&hello())
        .start();
    let versions = [kavro_e2e::wasm("probe"), kavro_e2e::wasm("headers")];
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (served, by_probe, by_headers) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let c = client();
                // Bounded: at most 20 000 requests a client.
                for _ in 0..20_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let r = c
                        .get(host.url("/hello"))
                        .send()
                        .expect("no request may fail");
                    assert_eq!(r.status(), 200);
                    let probe = r.headers().contains_key("x-probe-phases");
                    let headers = r.headers().contains_key("x-version");
                    assert!(probe != headers, "one version exactly: {:?}", r.headers());
                    if probe { &by_probe } else { &by_headers }.fetch_add(1, Ordering::Relaxed);
                    served.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // The storm starts once the clients are served, and goes on once
        // the first swap's version has served: on a busy machine the
        // clients may otherwise start only after the last swap.
        eventually("the first version to serve", || {
            (by_probe.load(Ordering::Relaxed) > 0).then_some(())
        });
        for i in 0..50 {
            // Replace atomically, as a deploy tool would: write aside, rename.
            let tmp = host.plugins_dir().join("ver.wasm.tmp");
            std::fs::copy(&versions[(i + 1) % 2], &tmp).unwrap();
            std::fs::rename(&tmp, host.plugins_dir().join("ver.wasm")).unwrap();
            let (status, out) = host.reload();
            assert_eq!(status, 200, "swap {i}: {out}");
            if i == 0 {
                eventually("the second version to serve", || {
                    (by_headers.load(Ordering::Relaxed) > 0).then_some(())
                });
            }
            if i == 25 {
                // An invalid file dropped in mid-storm changes nothing.
                std::fs::write(host.plugins_dir().join("junk.wasm"), b"not wasm").unwrap();
                assert_eq!(host.reload().0, 422);
                std::fs::remove_file(host.plugins_dir().join("junk.wasm")).unwrap();
            }
        }
        stop.store(true, Ordering::SeqCst);
    });
    let served = served.load(Ordering::Relaxed);
    assert!(served > 100, "only {served} requests during the storm");
    assert!(by_probe.load(Ordering::Relaxed) > 0 && by_headers.load(Ordering::Relaxed) > 0);
    // Old versions were freed: one plugin version's instances remain.
    let d: serde_json::Value = host.admin_json("/diagnostics");
    assert_eq!(d["plugins"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["responses"]["5xx"], 0, "{d}");
}

#[test]
fn a_truncated_file_or_a_component_of_another_world_is_refused() {
    let host = Host::builder()
        .plugin("headers", "headers")
        .settings("headers", "[config]\nresponse_set = \"x-version: 1\"\n")
        .config(&hello())
        .start();
    let version = || {
        client().get(host.url("/hello")).send().unwrap().headers()["x-version"]
            .to_str()
            .unwrap()
            .to_string()
    };
    // The same plugin, cut in half as by an interrupted copy.
    let whole = std::fs::read(kavro_e2e::wasm("headers")).unwrap();
    std::fs::write(
        host.plugins_dir().join("headers.wasm"),
        &whole[..whole.len() / 2],
    )
    .unwrap();
    let (status, out) = host.reload();
    assert_eq!(status, 422, "{out}");
    assert!(out.to_string().contains("headers.wasm"), "{out}");
    assert_eq!(version(), "1");

    // A WASI command, not a plugin: the message names what it exports.
    std::fs::write(host.plugins_dir().join("headers.wasm"), &whole).unwrap();
    std::fs::copy(
        kavro_e2e::wasm("wasi-command"),
        host.plugins_dir().join("tool.wasm"),
    )
    .unwrap();
    let (status, out) = host.reload();
    assert_eq!(status, 422, "{out}");
    let text = out.to_string();
    assert!(
        text.contains("tool.wasm") && text.contains("exports none of the phases"),
        "{text}"
    );
    assert!(text.contains("wasi:cli/run"), "{text}");
    assert_eq!(version(), "1");
}

#[test]
fn editing_the_config_file_reloads_by_itself_and_other_files_beside_it_do_not() {
    let host = Host::builder().config(&hello()).start();
    // A file beside the config that changes all the time (a log, say)
    // triggers nothing.
    let beside = host.config_path().with_file_name("app.log");
    for i in 0..20 {
        std::fs::write(&beside, format!("line {i}\n")).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(
        host.admin_json("/status")["last_reload"].is_null(),
        "a write beside the config reloaded it"
    );
    // Replacing the config file, as an editor does, does.
    let tmp = host.config_path().with_extension("tmp");
    let added = format!("{}\n{}", hello(), respond_route("bye", "/bye", "bye"));
    std::fs::write(&tmp, added).unwrap();
    std::fs::rename(&tmp, host.config_path()).unwrap();
    eventually("the new route", || {
        (body(&host, "/bye").0 == 200).then_some(())
    });
}

#[test]
fn a_large_component_swapped_in_serves_baseline_code_until_its_optimized_code_is_ready() {
    // The Python example is 18 MB: with no artifact cached, a swap serves it
    // on baseline (Winch) code, then reloads once the optimizing compile
    // has stored its artifact.
    let host = Host::builder()
        .plugin("headers", "ab")
        .settings("ab", "capabilities = [\"kv\"]\n")
        .config(&hello())
        .start();
    let plugin = |host: &Host| host.admin_json("/plugins")["plugins"][0].clone();
    let before = plugin(&host);
    assert_eq!(before["code"], "optimized");

    let new = host.plugins_dir().join("ab.wasm.part");
    std::fs::copy(kavro_e2e::wasm("ab-test-python"), &new).unwrap();
    std::fs::rename(&new, host.plugins_dir().join("ab.wasm")).unwrap();
    let variant = |host: &Host| {
        let r = client().get(host.url("/hello")).send().unwrap();
        assert_eq!(r.status(), 200);
        r.headers().get("x-ab-variant").is_some()
    };
    // Compiles run at idle priority, beside the other tests: give them time.
    let swapped = eventually_within(LONG, "the Python component to serve", || {
        let p = plugin(&host);
        (p["hash"] != before["hash"]).then_some(p)
    });
    assert_eq!(swapped["code"], "baseline", "{swapped}");
    assert!(variant(&host));

    eventually_within(LONG, "the optimized code", || {
        (plugin(&host)["code"] == "optimized").then_some(())
    });
    assert_eq!(plugin(&host)["hash"], swapped["hash"]);
    assert!(variant(&host));
    host.assert_logged("trigger=\"optimized code ready\"");
}
