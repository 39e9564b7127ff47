//! The config lifecycle: every reload attempt recorded with its versions,
//! result and reason; a swapped-in set that fails where the one before it
//! did not is rolled back by itself; lifecycle events as JSON log lines.

use std::time::Duration;

use kavro_e2e::{client, eventually, eventually_within, respond_route, Host};

fn status_of(host: &Host, hostile: Option<&str>) -> u16 {
    let mut req = client().get(host.url("/hello"));
    if let Some(mode) = hostile {
        req = req.header("x-hostile", mode);
    }
    req.send().unwrap().status().as_u16()
}

fn attempts(host: &Host) -> Vec<serde_json::Value> {
    host.admin_json("/reloads")["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_set_that_fails_every_request_is_rolled_back() {
    let config = format!(
        "[server]\nreload_verify_s = 30\n{}",
        respond_route("hello", "/hello", "hello")
    );
    let mut host = Host::builder().config(&config).start();
    let before = host.admin_json("/status")["set_version"]
        .as_str()
        .unwrap()
        .to_string();
    // The set before serves these requests well.
    for _ in 0..20 {
        assert_eq!(status_of(&host, Some("trap")), 200);
    }

    // A plugin that fails every such request (fail-closed: 500).
    std::fs::copy(
        kavro_e2e::wasm("hostile"),
        host.plugins_dir().join("hostile.wasm"),
    )
    .unwrap();
    let (status, out) = host.reload();
    assert_eq!(status, 200, "{out}");
    let after = host.admin_json("/status")["set_version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(after, before);

    // Its failures roll it back within the window: the requests are served
    // as before, by the set before.
    let mut failed = 0;
    eventually_within(Duration::from_secs(20), "the rollback", || {
        let s = status_of(&host, Some("trap"));
        failed += usize::from(s == 500);
        (s == 200).then_some(())
    });
    assert!(failed >= 10, "{failed} failures seen before the rollback");
    assert_eq!(host.admin_json("/status")["set_version"], before.as_str());
    let rolled: Vec<_> = attempts(&host)
        .into_iter()
        .filter(|a| a["result"] == "rolled_back")
        .collect();
    assert_eq!(rolled.len(), 1, "{rolled:?}");
    let a = &rolled[0];
    assert_eq!(a["reason"], "failure_rate");
    // The watcher may have swapped the plugin in first; either way the set
    // before both serves again.
    assert_eq!(a["new_version"], after.as_str());
    assert!(
        a["errors"][0].as_str().unwrap().contains("requests failed"),
        "{a}"
    );
    host.assert_logged("reload rolled back");
    // The set it went back to keeps serving; a clean SIGTERM.
    for _ in 0..20 {
        assert_eq!(status_of(&host, Some("trap")), 200);
    }
    assert!(host.terminate(Duration::from_secs(10)).success());
}

#[test]
fn attempts_are_recorded_with_versions_results_and_reasons() {
    let hello = respond_route("hello", "/hello", "hello");
    let host = Host::builder().config(&hello).start();
    std::fs::write(host.config_path(), format!("{hello}\n[[routes\n")).unwrap();
    assert_eq!(host.reload().0, 422);
    std::fs::write(
        host.config_path(),
        format!("{hello}{}", respond_route("bye", "/bye", "bye")),
    )
    .unwrap();
    assert_eq!(host.reload().0, 200);
    // Newest first; the watcher may have seen the file changes too.
    let all = eventually("both attempts on /reloads", || {
        let all = attempts(&host);
        (all.iter().any(|a| a["result"] == "applied")
            && all.iter().any(|a| a["result"] == "refused"))
        .then_some(all)
    });
    let refused = all.iter().find(|a| a["result"] == "refused").unwrap();
    assert_eq!(refused["reason"], "config_invalid");
    assert!(refused["new_version"].is_null());
    assert!(refused["errors"][0]
        .as_str()
        .unwrap()
        .contains("kavro.toml:"));
    let applied = all.iter().find(|a| a["result"] == "applied").unwrap();
    assert_eq!(applied["reason"], "ok");
    assert_ne!(applied["old_version"], applied["new_version"]);
    let ids: Vec<u64> = all.iter().map(|a| a["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

#[test]
fn json_logs_carry_lifecycle_events() {
    let config = format!(
        "[server]\nlog_format = \"json\"\n{}",
        respond_route("hello", "/hello", "hello")
    );
    let mut host = Host::builder().config(&config).start();
    assert_eq!(status_of(&host, None), 200);
    assert_eq!(host.reload().0, 200);
    host.assert_logged("\"event\":\"reload_applied\"");
    assert!(host.terminate(Duration::from_secs(10)).success());
    let log = host.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let named = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == name)
            .unwrap_or_else(|| panic!("no {name} in {log}"))
    };
    let start = named("server_start");
    assert_eq!(start["level"], "INFO");
    assert!(start["timestamp"].is_string() && start["message"].is_string());
    let applied = named("reload_applied");
    assert!(applied["new_version"].is_string() && applied["id"].is_u64());
    assert_eq!(named("server_stop")["clean"], true);
}
