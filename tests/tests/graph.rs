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

/// `sdk/config/kavro` (the TypeScript config's CLI) in `dir`.
fn kavro_ts(args: &[&str], dir: &Path) -> (bool, String, String) {
    require_build();
    let cli = kavro_e2e::crate_dir().join("../sdk/config/kavro");
    let out = Command::new(cli)
        .args(args)
        .current_dir(dir)
        .env("KAVRO_HOST", bin_dir().join("kavro-host"))
        .output()
        .expect("run sdk/config/kavro");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The reference site, in TypeScript and in TOML (examples/ts-config),
/// compiles to byte-identical graphs.
#[test]
fn the_reference_site_in_typescript_and_toml_is_one_graph() {
    let example = kavro_e2e::crate_dir().join("../examples/ts-config");
    let (ok, from_ts, err) = kavro_ts(&["compile", "--config", "kavro.config.ts"], &example);
    assert!(ok, "{err}");
    let (ok, from_toml, err) = kavro(&["compile", "kavro.toml"], &example);
    assert!(ok, "{err}");
    assert_eq!(from_ts, from_toml);
    let graph: serde_json::Value = serde_json::from_str(&from_ts).unwrap();
    assert_eq!(
        graph["routes"][3]["fastcgi"]["script_root"],
        "/var/www/html"
    );
    assert_eq!(graph["routes"][0]["host"], "localhost");
}

/// A site written from sdk/config/README.md: static files, a proxy, a
/// response and PHP whose FastCGI server sees its scripts under another
/// folder, compiled to a graph the host serves; then 32 clients and a
/// clean SIGTERM.
#[test]
fn a_typescript_config_serves_static_proxy_respond_and_php() {
    let fpm = kavro_e2e::php::PhpFpm::start(2);
    let app = kavro_e2e::upstream::Upstream::start("app");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("dist")).unwrap();
    std::fs::write(dir.path().join("dist/site.css"), "body{}").unwrap();
    // The local copy holds the scripts' names; php-fpm reads its own.
    std::fs::create_dir_all(dir.path().join("php")).unwrap();
    std::fs::write(dir.path().join("php/server.php"), "").unwrap();
    let seen = std::fs::canonicalize(fpm.root()).unwrap();
    let config = format!(
        r#"import {{ defineConfig, fastCgi, fastCgiUpstream, proxy, respond, route, server, staticFiles, upstream }} from "kavro/config";

export default defineConfig({{
  upstreams: [upstream("app", "http://{app}"), fastCgiUpstream("php-fpm", "{fpm}")],
  servers: [
    server({{
      listen: "127.0.0.1:8080",
      routes: [
        route("/assets/*", staticFiles("./dist", {{ stripPrefix: "/assets" }}), {{ clientCache: "full" }}),
        route("/api/*", proxy("app")),
        route("/health", respond("ok\n")),
        route("/*.php", fastCgi("php-fpm", "./php", {{ scriptRoot: "{seen}", cache: {{ ttlMs: 5000, statuses: [200] }} }})),
      ],
    }}),
  ],
}});
"#,
        app = app.addr,
        fpm = fpm.address(),
        seen = seen.display(),
    );
    std::fs::write(dir.path().join("kavro.config.ts"), config).unwrap();
    let (ok, _, err) = kavro_ts(
        &[
            "compile",
            "--config",
            "kavro.config.ts",
            "--out",
            ".kavro/route-graph.json",
        ],
        dir.path(),
    );
    assert!(ok, "{err}");
    let graph = dir.path().join(".kavro/route-graph.json");
    let mut host = Host::builder()
        .arg("--config")
        .arg(graph.to_str().unwrap())
        .start();
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                let c = client();
                let r = c.get(host.url("/assets/site.css")).send().unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.text().unwrap(), "body{}");
                let r = c.get(host.url("/api/x")).send().unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.headers()["x-upstream"], "app");
                let r = c.get(host.url("/health")).send().unwrap();
                assert_eq!(r.text().unwrap(), "ok\n");
            });
        }
    });
    let r = client().get(host.url("/server.php")).send().unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(
        v["SCRIPT_FILENAME"],
        seen.join("server.php").display().to_string()
    );
    assert!(host.terminate(Duration::from_secs(10)).success());
}

/// A TypeScript config that throws, exports the wrong shape or does not
/// parse: the file, the line and what was expected.
#[test]
fn a_bad_typescript_config_names_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let check = |source: &str, wants: &[&str]| {
        std::fs::write(dir.path().join("kavro.config.ts"), source).unwrap();
        let (ok, out, err) = kavro_ts(&["compile", "--config", "kavro.config.ts"], dir.path());
        assert!(!ok, "{out}");
        for want in wants {
            assert!(err.contains(want), "{want} not in:\n{err}");
        }
    };
    check(
        "import { defineConfig } from \"kavro/config\";\nexport default defineConfig({ servers: [] });\n",
        &["kavro.config.ts:2:", "defineConfig needs `servers`"],
    );
    check(
        "export default { hello: 1 };\n",
        &["kavro.config.ts", "defineConfig"],
    );
    check("export default {\n  routes: [,\n", &["kavro.config.ts:3:"]);
    check(
        "import { defineConfig, server, route, proxy } from \"kavro/config\";\n\
         export default defineConfig({ servers: [server({ listen: 8080, routes: [route(\"/\", proxy(\"nowhere\"))] })] });\n",
        &["/routes/0/proxy", "`nowhere` is not declared"],
    );
}
