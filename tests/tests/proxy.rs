//! Proxy action end to end: header rules, round robin, 502/504, request ids,
//! the headers plugin on both sides, HTTP/2.

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, free_port, with_plugin, Host};

/// One upstream `app` over `targets`, behind a catch-all route.
fn proxy_config(targets: &[String], read_timeout_ms: u64) -> String {
    let list = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[upstreams.app]\ntargets = [{list}]\nread_timeout_ms = {read_timeout_ms}\n\n\
         [[routes]]\nname = \"app\"\npath = \"/*\"\nproxy = \"app\"\n"
    )
}

#[test]
fn forwarded_headers_hop_by_hop_and_request_id() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&proxy_config(&[up.addr.to_string()], 5000))
        .start();
    let resp = client()
        .get(host.url("/echo?q=1"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "1")
        .header("x-request-id", "client-chosen-42")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "client-chosen-42");
    assert!(
        resp.headers().get("x-hop").is_none(),
        "hop-by-hop response header leaked"
    );
    assert!(resp.headers().get("keep-alive").is_none());
    let echo: serde_json::Value = resp.json().unwrap();
    let h = &echo["headers"];
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"], serde_json::json!(["http"]));
    assert_eq!(
        h["x-forwarded-host"],
        serde_json::json!([host.addr.to_string()])
    );
    assert!(
        h.get("x-drop-me").is_none(),
        "connection-listed header forwarded: {h}"
    );
    assert_eq!(h["x-request-id"], serde_json::json!(["client-chosen-42"]));
    assert_eq!(echo["uri"], "/echo?q=1");

    // Without one, an id is generated, sent upstream and returned.
    let resp = client().get(host.url("/")).send().unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let echo: serde_json::Value = resp.json().unwrap();
    assert_eq!(echo["headers"]["x-request-id"], serde_json::json!([id]));
}

#[test]
fn round_robin_over_targets() {
    let a = Upstream::start("a");
    let b = Upstream::start("b");
    let host = Host::builder()
        .config(&proxy_config(
            &[a.addr.to_string(), b.addr.to_string()],
            5000,
        ))
        .start();
    let c = client();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let r = c.get(host.url("/")).send().unwrap();
        seen.push(r.headers()["x-upstream"].to_str().unwrap().to_string());
    }
    assert_eq!(a.hits(), 5, "{seen:?}");
    assert_eq!(b.hits(), 5, "{seen:?}");
}

#[test]
fn connect_failure_is_502_and_timeout_is_504() {
    let dead = format!("127.0.0.1:{}", free_port());
    let host = Host::builder().config(&proxy_config(&[dead], 5000)).start();
    let r = client().get(host.url("/")).send().unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers().contains_key("x-request-id"));
    // The connection is not reused after a failed proxy, and says so.
    assert_eq!(r.headers()["connection"], "close");
    assert!(r.text().unwrap().contains("upstream `app`"));

    let slow = Upstream::start("slow");
    let host = Host::builder()
        .config(&proxy_config(&[slow.addr.to_string()], 300))
        .start();
    let r = client().get(host.url("/slow?ms=3000")).send().unwrap();
    assert_eq!(r.status(), 504);
    assert!(r.text().unwrap().contains("upstream `app`"));
}

#[test]
fn headers_plugin_changes_both_sides() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .plugin("headers", "headers")
        .config(&with_plugin(
            &proxy_config(&[up.addr.to_string()], 5000),
            "headers",
            "request_set = \"x-env: test\"\nrequest_remove = \"x-secret\"\n\
             response_set = \"x-served-by: kavro\"\nresponse_remove = \"x-upstream\"",
        ))
        .start();
    let r = client()
        .get(host.url("/"))
        .header("x-secret", "s3cr3t")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-served-by"], "kavro");
    assert!(r.headers().get("x-upstream").is_none());
    let echo: serde_json::Value = r.json().unwrap();
    assert_eq!(echo["headers"]["x-env"], serde_json::json!(["test"]));
    assert!(echo["headers"].get("x-secret").is_none());
}

#[test]
fn http2_cleartext_and_malformed_requests() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&proxy_config(&[up.addr.to_string()], 5000))
        .start();
    let h2 = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(host.url("/over-h2")).send().unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);

    let garbage = host.raw(b"THIS IS NOT HTTP AT ALL, NOT EVEN CLOSE\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let bad_version = host.raw(b"GET / HTTP/9.9\r\nHost: example.com\r\n\r\n");
    assert!(bad_version.starts_with("HTTP/1.1 400"), "{bad_version}");
    let bad_header = host.raw(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    assert!(bad_header.starts_with("HTTP/1.1 400"), "{bad_header}");
    // Still serving.
    assert_eq!(client().get(host.url("/")).send().unwrap().status(), 200);

    // Without h2c nothing waits for an HTTP/2 preface: even a request
    // shorter than one gets its answer.
    let host = Host::builder()
        .config(&format!(
            "[server]\nh2c = false\n{}",
            proxy_config(&[up.addr.to_string()], 5000)
        ))
        .start();
    let short = host.raw(b"NOT HTTP\r\n\r\n");
    assert!(short.starts_with("HTTP/1.1 400"), "{short}");
    let http10 = host.raw(b"GET / HTTP/1.0\r\n\r\n");
    assert!(
        http10.starts_with("HTTP/1.1 200") || http10.starts_with("HTTP/1.0 200"),
        "{http10}"
    );
}

#[test]
fn package_runs_on_errors_and_redirect_routes_answer() {
    let dead = format!("127.0.0.1:{}", free_port());
    let host = Host::builder()
        .plugin("headers", "headers")
        .settings("headers", "[config]\nresponse_set = \"x-served-by: kavro\"\n")
        .config(&format!(
            "[upstreams.gone]\ntargets = [\"{dead}\"]\n\n\
             [[routes]]\nname = \"gone\"\npath = \"/gone/*\"\nproxy = \"gone\"\n\n\
             [[routes]]\nname = \"legacy\"\npath = \"/v1/*\"\nredirect = {{ to = \"https://{{host}}/api{{uri}}\", status = 308 }}\n\n\
             [[routes]]\nname = \"only-get\"\npath = \"/form\"\nmethods = [\"GET\"]\nrespond = {{ body = \"form\" }}\n"
        ))
        .start();
    let c = client();
    for (method, path, status) in [
        ("GET", "/gone/x", 502),
        ("GET", "/nowhere", 404),
        ("POST", "/form", 405),
        ("GET", "/v1/items?page=2", 308),
    ] {
        let r = c
            .request(method.parse().unwrap(), host.url(path))
            .header("host", "shop.example.com")
            .send()
            .unwrap();
        assert_eq!(r.status(), status, "{method} {path}");
        assert_eq!(r.headers()["x-served-by"], "kavro", "{method} {path}");
        assert!(r.headers().contains_key("x-request-id"), "{method} {path}");
        if status == 308 {
            assert_eq!(
                r.headers()["location"],
                "https://shop.example.com/api/v1/items?page=2"
            );
        }
    }
}
