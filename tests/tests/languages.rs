//! Plugins written in other languages, built from `examples/` by their
//! SDK's one build command (./dev.sh test runs it), through kavro-host.

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, proxy_to_upstreams, Host};

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
        assert_eq!(echo["headers"]["x-ab-variant"][0], variant.as_str(), "upstream saw it");
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
