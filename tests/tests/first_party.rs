//! The first-party plugins end to end: redirects, cors, router, access-log.

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, eventually, proxy_to_upstreams, with_plugin, Host};

#[test]
fn redirects_answer_in_prime_including_http_to_https() {
    let up = Upstream::start("app");
    let host = Host::builder()
        .plugin("redirects", "redirects")
        .config(&with_plugin(
            &proxy_to_upstreams(&[("app", up.addr.to_string())], 5000),
            "redirects",
            "rules = \"/old -> /new; /blog/* -> https://blog.example.com/* 302\"",
        ))
        .start();
    let c = client();
    let r = c.get(host.url("/old?x=1")).send().unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/new?x=1");
    let r = c.get(host.url("/blog/2026/hello")).send().unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "https://blog.example.com/2026/hello"
    );
    assert!(r.headers().contains_key("x-request-id"));
    // Everything else reaches the upstream, which never saw the redirects.
    assert_eq!(c.get(host.url("/other")).send().unwrap().status(), 200);
    assert_eq!(up.hits(), 1);

    let host = Host::builder()
        .plugin("redirects", "redirects")
        .settings("redirects", "[config]\nhttps = \"true\"\n")
        .start();
    let r = c
        .get(host.url("/login?next=/a"))
        .header("host", "shop.example.com:8080")
        .send()
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        "https://shop.example.com/login?next=/a"
    );
}

#[test]
fn cors_answers_preflight_and_decorates_responses() {
    let up = Upstream::start("app");
    let host = Host::builder()
        .plugin("cors", "cors")
        .config(&with_plugin(
            &proxy_to_upstreams(&[("app", up.addr.to_string())], 5000),
            "cors",
            "allow_origins = \"https://app.example.com\"\nallow_methods = \"GET, PUT\"\nallow_credentials = \"true\"\nexpose_headers = \"x-request-id\"",
        ))
        .start();
    let c = client();
    let r = c
        .request(reqwest::Method::OPTIONS, host.url("/api/items"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "content-type")
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-methods"], "GET, PUT");
    assert_eq!(h["access-control-allow-headers"], "content-type");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(up.hits(), 0, "a preflight must not reach the upstream");

    let r = c
        .get(host.url("/api/items"))
        .header("origin", "https://app.example.com")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(r.headers()["access-control-expose-headers"], "x-request-id");
    assert_eq!(r.headers()["vary"], "origin");

    let r = c
        .get(host.url("/api/items"))
        .header("origin", "https://evil.example.net")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn router_forwards_by_header_cookie_and_weighted_split() {
    let (stable, beta) = (Upstream::start("stable"), Upstream::start("beta"));
    let upstreams = [
        ("stable", stable.addr.to_string()),
        ("beta", beta.addr.to_string()),
    ];
    let config =
        |settings: &str| with_plugin(&proxy_to_upstreams(&upstreams, 5000), "router", settings);
    let c = client();
    let side = |r: reqwest::blocking::Response| -> String {
        let echo: serde_json::Value = r.json().unwrap();
        echo["upstream"].as_str().unwrap().to_string()
    };

    let host = Host::builder()
        .plugin("router", "router")
        .config(&config(
            "rules = \"header:x-beta=1 -> beta; cookie:canary=always -> beta\"",
        ))
        .start();
    assert_eq!(side(c.get(host.url("/")).send().unwrap()), "stable");
    assert_eq!(
        side(c.get(host.url("/")).header("x-beta", "1").send().unwrap()),
        "beta"
    );
    assert_eq!(
        side(c.get(host.url("/")).header("x-beta", "0").send().unwrap()),
        "stable"
    );
    let r = c
        .get(host.url("/"))
        .header("cookie", "a=b; canary=always")
        .send()
        .unwrap();
    let echo: serde_json::Value = r.json().unwrap();
    assert_eq!(echo["upstream"], "beta");
    assert_eq!(
        echo["headers"]["x-kavro-upstream"],
        serde_json::json!(["beta"])
    );

    // A canary: 80/20 by weight, drawn per request.
    let host = Host::builder()
        .plugin("router", "router")
        .config(&config("split = \"stable:80, beta:20\""))
        .start();
    let beta_before = beta.hits();
    for _ in 0..200 {
        assert_eq!(c.get(host.url("/")).send().unwrap().status(), 200);
    }
    let to_beta = beta.hits() - beta_before;
    assert!((15..=70).contains(&to_beta), "beta got {to_beta} of 200");

    // Sticky by cookie: one session always lands on the same side.
    let host = Host::builder()
        .plugin("router", "router")
        .config(&config(
            "split = \"stable:50, beta:50\"\nsticky = \"cookie:session\"",
        ))
        .start();
    for session in ["s1", "s2", "s3", "s4"] {
        let first = side(
            c.get(host.url("/"))
                .header("cookie", format!("session={session}"))
                .send()
                .unwrap(),
        );
        for _ in 0..5 {
            let again = side(
                c.get(host.url("/"))
                    .header("cookie", format!("session={session}"))
                    .send()
                    .unwrap(),
            );
            assert_eq!(again, first, "session {session} moved");
        }
    }
}

#[test]
fn access_log_writes_one_json_line_per_request() {
    let up = Upstream::start("app");
    let host = Host::builder()
        .plugin("access-log", "access-log")
        .settings("access-log", "[config]\nheaders = \"x-tenant\"\n")
        .config(&proxy_to_upstreams(&[("app", up.addr.to_string())], 5000))
        .start();
    let c = client();
    for i in 0..3 {
        let r = c
            .get(host.url(&format!("/page/{i}?q=x")))
            .header("user-agent", "kavro-test")
            .header("x-request-id", format!("log-{i}"))
            .header("x-tenant", "acme")
            .send()
            .unwrap();
        assert!(!r.text().unwrap().is_empty());
    }
    let lines: Vec<serde_json::Value> = eventually("three access-log lines", || {
        let lines: Vec<serde_json::Value> = host
            .log()
            .lines()
            .filter_map(|l| l.find("{\"").map(|i| &l[i..]))
            .filter_map(|j| {
                // The host log may append fields after the message.
                let end = j.rfind('}')?;
                serde_json::from_str(&j[..=end]).ok()
            })
            .filter(|v: &serde_json::Value| v.get("uri").is_some())
            .collect();
        (lines.len() >= 3).then_some(lines)
    });
    let first = lines
        .iter()
        .find(|l| l["id"] == "log-0")
        .expect("line for log-0");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["uri"], "/page/0?q=x");
    assert_eq!(first["status"], 200);
    assert_eq!(first["upstream"], "app");
    assert_eq!(first["user_agent"], "kavro-test");
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["x-tenant"], "acme");
    assert!(first["bytes"].as_u64().unwrap() > 0);
}
