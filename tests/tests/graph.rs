//! One config graph, two ways to write it: a site in TOML and the same in
//! JSON compile to byte-identical canonical graphs, the host serves the JSON
//! one, a compiled graph compiles to itself, and bad JSON is refused with
//! the JSON pointer of what is wrong and a hint.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kavro_e2e::{bin_dir, client, require_build, Host};

fn kavro(args: &[&str], dir: &Path) -> (bool, String, String) {
    require_build();
    let out = Command::new(bin_dir().join("kavro-host"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run kavro-host");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const TOML: &str = r#"
[server]
listen = ["127.0.0.1:8080"]

[upstreams.app]
targets = ["127.0.0.1:3000"]

[[routes]]
name = "assets"
path = "/assets/*"
static = { root = "site", strip_prefix = "/assets" }
client_cache = "full"

[[routes]]
path = "/api/*"
proxy = "app"
cache = { ttl = "5s", statuses = [200] }

[[routes]]
path = "/health"
respond = { body = "ok" }
"#;

const JSON: &str = r#"{
  "routes": [
    { "name": "assets", "path": "/assets/*", "client_cache": "full",
      "static": { "root": "site", "strip_prefix": "/assets" } },
    { "path": "/api/*", "proxy": "app", "cache": { "ttl": "5s", "statuses": [200] } },
    { "path": "/health", "respond": { "body": "ok" }, "timeouts": null }
  ],
  "upstreams": { "app": { "targets": ["127.0.0.1:3000"] } },
  "server": { "listen": ["127.0.0.1:8080"] }
}
"#;

#[test]
fn toml_and_json_are_one_graph() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("site")).unwrap();
    std::fs::write(dir.path().join("site/app.js"), "go()").unwrap();
    std::fs::write(dir.path().join("site.toml"), TOML).unwrap();
    std::fs::write(dir.path().join("site.json"), JSON).unwrap();

    let (ok, from_toml, err) = kavro(&["compile", "site.toml"], dir.path());
    assert!(ok, "{err}");
    let (ok, from_json, err) = kavro(&["compile", "site.json"], dir.path());
    assert!(ok, "{err}");
    assert_eq!(from_toml, from_json);
    // Canonical: the same bytes again, defaults written out, the root
    // resolved, the schema named; and a graph compiles to itself.
    let (_, again, _) = kavro(&["compile", "site.toml"], dir.path());
    assert_eq!(again, from_toml);
    let graph: serde_json::Value = serde_json::from_str(&from_toml).unwrap();
    assert_eq!(graph["schema"], 1);
    assert_eq!(graph["routes"][1]["cache"]["query"], true);
    let root = std::fs::canonicalize(dir.path().join("site")).unwrap();
    assert_eq!(
        graph["routes"][0]["static"]["root"],
        root.display().to_string()
    );
    std::fs::write(dir.path().join("graph.json"), &from_toml).unwrap();
    let (ok, itself, err) = kavro(&["compile", "graph.json"], dir.path());
    assert!(ok, "{err}");
    assert_eq!(itself, from_toml);
    let (ok, out, err) = kavro(&["validate", "graph.json"], dir.path());
    assert!(ok, "{out}{err}");

    // The host serves the JSON config as it would the TOML one.
    let mut host = Host::builder()
        .arg("--config")
        .arg(dir.path().join("site.json").to_str().unwrap())
        .start();
    let r = client().get(host.url("/health")).send().unwrap();
    assert_eq!(r.text().unwrap(), "ok");
    let r = client().get(host.url("/assets/app.js")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=604800, immutable"
    );
    assert!(host.terminate(Duration::from_secs(10)).success());
}

#[test]
fn bad_json_is_refused_with_its_pointer_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let check = |json: &str, wants: &[&str]| {
        std::fs::write(dir.path().join("bad.json"), json).unwrap();
        let (ok, out, err) = kavro(&["compile", "bad.json"], dir.path());
        assert!(!ok, "{out}");
        for want in wants {
            assert!(err.contains(want), "{want} not in:\n{err}");
        }
        assert!(err.contains("hint:"), "{err}");
    };
    check(
        r#"{"routes": [{"path": "/*", "proxy": "nowhere"}]}"#,
        &["bad.json: /routes/0/proxy", "nowhere"],
    );
    check(
        r#"{"routes": [{"path": "/*", "respond": {"body": "x"}, "bogus": 1}]}"#,
        &["/routes/0", "unknown field `bogus`"],
    );
    check(
        r#"{"schema": 2, "routes": []}"#,
        &["/schema", "schema 2", "schema 1"],
    );
    check(r#"{"routes": [null]}"#, &["/routes/0", "null"]);
    check("{\"routes\": [\n  {\"path\": }\n]}", &["bad.json:2:"]);
}
