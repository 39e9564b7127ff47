//! Plugins written in other languages, built from `examples/` by their
//! SDK's one build command (./dev.sh test runs it), through kavro-host.

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, eventually, proxy_to_upstreams, Host};

/// C: the sliding-window rate limiter (prime + package, KV + config).
#[test]
fn c_rate_limit() {
    let config = format!(
        "{}
[[plugins]]
name = \"rate-limit\"\ncapabilities = [\"kv\"]\n\
         [plugins.config]\nlimit = \"3\"\nwindow_s = \"60\"\nkey_header = \"x-api-key\"\n",
        kavro_e2e::respond_route("home", "/*", "ok")
    );
    let host = Host::builder()
        .plugin("rate-limit-c", "rate-limit")
        .config(&config)
        .start();
    let c = client();
    let hit = |key: &str| {
        let r = c
            .get(host.url("/"))
            .header("x-api-key", key)
            .send()
            .unwrap();
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        (
            r.status().as_u16(),
            h("ratelimit-remaining"),
            h("retry-after"),
            h("ratelimit-limit"),
        )
    };
    // Three in the window from config, then 429 with Retry-After.
    assert_eq!(hit("k1"), (200, Some("2".into()), None, Some("3".into())));
    assert_eq!(hit("k1").1, Some("1".into()));
    assert_eq!(hit("k1").1, Some("0".into()));
    let (status, remaining, retry, _) = hit("k1");
    assert_eq!((status, remaining), (429, None));
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another key has its own count in the KV store.
    assert_eq!(hit("k2").0, 200);
    // Concurrent clients on one key: never more admitted than the limit.
    let admitted = kavro_e2e::concurrent_admitted(&host, 32, 4, &[("x-api-key", "k3")]);
    assert_eq!(admitted, 3);
}

/// TypeScript: the HTML rewriter (present + package, KV + config).
#[test]
fn typescript_html_rewrite() {
    let page = "<html><body class=x><a href='http://example.com/a'>a</a> \
                <a href='http://example.com/b'>b</a> <a href='http://other.org/'>o</a></body></html>";
    let config = format!(
        "[[routes]]\nname = \"page\"\npath = \"/page\"\n\
         respond = {{ body = \"{page}\", headers = {{ content-type = \"text/html\" }} }}\n\
         [[routes]]\nname = \"text\"\npath = \"/text\"\nrespond = {{ body = \"http://example.com\" }}\n\
         [[plugins]]\nname = \"html-rewrite\"\ncapabilities = [\"kv\"]\n\
         [plugins.config]\nupgrade_hosts = \"example.com\"\nbanner = \"<p>notice</p>\"\n"
    );
    let host = Host::builder()
        .plugin("html-rewrite-typescript", "html-rewrite")
        .config(&config)
        .start();
    let c = client();
    for n in 1..=2 {
        let r = c.get(host.url("/page")).send().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-links-upgraded"], "2");
        assert_eq!(r.headers()["x-pages-rewritten"], n.to_string().as_str());
        let body = r.text().unwrap();
        assert!(
            body.contains("<body class=x><p>notice</p><a href='https://example.com/a'>"),
            "{body}"
        );
        assert!(body.contains("https://example.com/b"), "{body}");
        assert!(
            body.contains("http://other.org/"),
            "only the listed hosts: {body}"
        );
    }
    // Not HTML: untouched.
    let r = c.get(host.url("/text")).send().unwrap();
    assert!(r.headers().get("x-links-upgraded").is_none());
    assert_eq!(r.text().unwrap(), "http://example.com");
}

/// Python: the A/B cookie assigner (prime + package, KV + config).
#[test]
fn python_ab_test() {
    let up = Upstream::start("app");
    let config = format!(
        "{}\n[[plugins]]\nname = \"ab-test\"\ncapabilities = [\"kv\"]\n[plugins.config]\nb_percent = \"25\"\n",
        proxy_to_upstreams(&[("app", up.addr.to_string())], 5000)
    );
    // Compiling an 18 MB Python component takes a few seconds; the host
    // answers nothing before it is ready.
    let host = Host::builder()
        .plugin("ab-test-python", "ab-test")
        .config(&config)
        .start();
    let c = client();
    let mut seen = Vec::new();
    for _ in 0..8 {
        let r = c.get(host.url("/")).send().unwrap();
        assert_eq!(r.status(), 200);
        let variant = r.headers()["x-ab-variant"].to_str().unwrap().to_string();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(cookie.starts_with(&format!("ab={variant};")), "{cookie}");
        let echo: serde_json::Value = r.json().unwrap();
        assert_eq!(
            echo["headers"]["x-ab-variant"][0],
            variant.as_str(),
            "upstream saw it"
        );
        seen.push(variant);
    }
    // b_percent = 25 from config, spread by the KV counter shared by every
    // instance: every fourth new visitor gets b.
    assert_eq!(seen, ["a", "a", "a", "b", "a", "a", "a", "b"]);

    // A returning visitor keeps the variant and gets no new cookie.
    let r = c
        .get(host.url("/"))
        .header("cookie", "theme=dark; ab=b")
        .send()
        .unwrap();
    assert_eq!(r.headers()["x-ab-variant"], "b");
    assert!(r.headers().get("set-cookie").is_none());

    let plugins = host.admin_json("/plugins");
    let p = &plugins["plugins"][0];
    assert_eq!(p["name"], "ab-test");
    assert_eq!(p["phases"], serde_json::json!(["prime", "package"]));
}

/// A plugin's own failure, as each SDK reports it through `log.fail`: the
/// `failing` test plugin fails in prime on `/raise` and in post on
/// `/raise-post`. The operator sees the language's own message (and, where
/// the language has one, the traceback naming the plugin's file) in the
/// log and on `GET /plugins`; the failure policy applies. An exception
/// leaves the instance sound, so Python and JavaScript keep it, where a C
/// abort traps and the instance is replaced.
fn failures_reach_the_operator(wasm: &str, kind: &str, traceback: &str) {
    let config = format!(
        "{}\n[[plugins]]\nname = \"failing\"\n# A fresh Python or JS instance takes a while on a busy machine.\nlimits = {{ deadline_ms = 5000 }}\n",
        kavro_e2e::respond_route("all", "/*", "ok")
    );
    let host = Host::builder()
        .plugin(wasm, "failing")
        .config(&config)
        .start();
    let c = client();
    let get = |path: &str| c.get(host.url(path)).send().unwrap().status().as_u16();
    let plugin = || host.admin_json("/plugins")["plugins"][0].clone();
    assert_eq!(get("/ok"), 200);
    let grown = || {
        host.admin_json("/diagnostics")["plugins"][0]["instances"]["replaced_grown"]
            .as_u64()
            .unwrap()
    };
    let created = plugin()["instances_created"].as_u64().unwrap() - grown();

    // Prime: the plugin's failure policy (fail-closed) answers.
    for _ in 0..3 {
        assert_eq!(get("/raise"), 500);
    }
    host.assert_logged("failing on purpose in prime");
    let last = &plugin()["last_error"];
    assert_eq!(last["phase"], "prime", "{last}");
    assert_eq!(last["kind"], kind, "{last}");
    let detail = last["detail"].as_str().unwrap();
    assert!(detail.contains("failing on purpose in prime"), "{detail}");
    assert!(detail.contains(traceback), "{detail}");
    assert!(last["at"].as_u64().unwrap() > 0, "{last}");

    // Post: counted and shown; the response has gone already.
    assert_eq!(get("/raise-post"), 200);
    host.assert_logged("failing on purpose in post");
    let last = eventually("post's failure on /plugins", || {
        let p = plugin();
        (p["last_error"]["phase"] == "post").then_some(p)
    });
    assert_eq!(last["failures"], 4, "{last}");
    assert_eq!(get("/ok"), 200);

    let replaced = plugin()["instances_created"].as_u64().unwrap() - created;
    if kind == "reported" {
        // A post still running when the next request arrives may grow the
        // pool by one instance, and a JavaScript heap grown by the
        // exceptions' stacks is replaced by the pool's growth rule; four
        // replaced instances besides those would mean the exceptions cost
        // them.
        let grown = grown();
        assert!(
            replaced.saturating_sub(grown) <= 1,
            "an exception must not cost the instance: {replaced} created, {grown} of them for growth"
        );
    } else {
        assert!(replaced >= 3, "a trapped instance is never reused");
    }
}

#[test]
fn python_exceptions_reach_the_operator() {
    failures_reach_the_operator("failing-python", "reported", "failing.py\", line");
}

#[test]
fn javascript_exceptions_reach_the_operator() {
    failures_reach_the_operator("failing-typescript", "reported", "RangeError");
}

#[test]
fn c_failures_reach_the_operator() {
    failures_reach_the_operator("failing-c", "trap", "the plugin reported");
}

/// The `label` test plugin of each language answers `!>` directives: its
/// name and arguments arrive in order, twice in one chain with different
/// arguments, and it can set the status.
fn directives_reach_the_plugin(wasm: &str) {
    let b = Host::builder().plugin(wasm, "label");
    let root = b.dir.path().join("site");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("page.html"), "!> label a b &> label c\n<p>x</p>").unwrap();
    std::fs::write(root.join("bare.html"), "!> label\n<p>x</p>").unwrap();
    let config = format!(
        "[[routes]]\npath = \"/*\"\nstatic = {{ root = \"{}\" }}\n\n\
         [[plugins]]\nname = \"label\"\n# A fresh Python or JS instance takes a while on a busy machine.\nlimits = {{ deadline_ms = 5000 }}\n",
        root.display()
    );
    let mut host = b.config(&config).start();
    let r = client().get(host.url("/page.html")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "label:c:label:a,b:<p>x</p>");
    let r = client().get(host.url("/bare.html")).send().unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.text().unwrap(), "which label?");
    assert!(host.terminate(std::time::Duration::from_secs(10)).success());
}

#[test]
fn python_directives() {
    directives_reach_the_plugin("label-python");
}

#[test]
fn typescript_directives() {
    directives_reach_the_plugin("label-typescript");
}

#[test]
fn c_directives() {
    directives_reach_the_plugin("label-c");
}
