//! The five phases end to end with the `probe` test plugin: prime
//! (rewrite, respond), prepare (respond, forward, decline), present,
//! package, post, per-request state, the shared KV store, and scoping.

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, eventually, proxy_to_upstreams, Host};

/// A host with the probe plugin (KV granted), two upstreams and a fixed
/// `/hello` route beside the catch-all proxy route.
fn probe_host(up: &Upstream, beta: &Upstream, extra_plugin_settings: &str) -> Host {
    let config = format!(
        r#"{}
[[routes]]
name = "hello"
path = "/hello"
respond = {{ status = 200, headers = {{ content-type = "text/plain" }}, body = "hello world\n" }}

[[plugins]]
name = "probe"
capabilities = ["kv"]
# Deadlines are tested with the hostile plugin; here a slow machine must
# never turn into a failed phase.
limits = {{ deadline_ms = 5000 }}
{extra_plugin_settings}
"#,
        proxy_to_upstreams(
            &[
                ("app", up.addr.to_string()),
                ("beta", beta.addr.to_string())
            ],
            5000
        )
    );
    Host::builder()
        .plugin("probe", "probe")
        .config(&config)
        .start()
}

#[test]
fn per_request_state_lives_from_prime_to_package_and_starts_empty() {
    let (up, beta) = (Upstream::start("app"), Upstream::start("beta"));
    let host = probe_host(&up, &beta, "");
    let c = client();
    for _ in 0..5 {
        let r = c.get(host.url("/hello")).send().unwrap();
        assert_eq!(r.status(), 200);
        // prime, prepare (declined), present, package: once each, never
        // carried over from the request before on the same warm instance.
        assert_eq!(r.headers()["x-probe-phases"], "rpbk");
        assert_eq!(r.headers()["x-probe-path"], "/hello");
        // Header changes: the plugin reads its own at once, the next phase
        // finds them, and a phase that may not change the request is
        // refused.
        assert_eq!(
            r.headers()["x-probe-edits"],
            "1,2|1,2|gone=true|refused=true"
        );
        assert!(r.headers().get("x-probe-gone").is_none());
    }
    // A proxied response streams: package runs on its head as it arrives,
    // present on its body afterwards.
    let r = c.get(host.url("/echo")).send().unwrap();
    assert_eq!(r.headers()["x-probe-phases"], "rpk");
}

#[test]
fn present_transforms_the_body_on_produced_and_proxied_responses() {
    let (up, beta) = (Upstream::start("app"), Upstream::start("beta"));
    let host = probe_host(&up, &beta, "");
    let c = client();
    let r = c
        .get(host.url("/hello"))
        .header("x-shout", "1")
        .send()
        .unwrap();
    let presented = r.headers().get("x-presented").cloned();
    let (status, text) = (r.status(), r.text().unwrap());
    assert_eq!(
        presented.as_ref().map(|v| v.to_str().unwrap()),
        Some("upper"),
        "{status} {text}\n{}",
        host.log()
    );
    assert_eq!(text, "HELLO WORLD\n");

    // On a streamed proxy response the head has already gone out: present
    // changes the body only.
    let r = c
        .get(host.url("/echo/path"))
        .header("x-shout", "1")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-presented").is_none());
    let body = r.text().unwrap();
    assert!(body.contains(r#""URI":"/ECHO/PATH""#), "{body}");

    // Without the header the body is untouched.
    let r = c.get(host.url("/hello")).send().unwrap();
    assert_eq!(r.text().unwrap(), "hello world\n");
}

#[test]
fn post_runs_after_the_response_is_written() {
    let (up, beta) = (Upstream::start("app"), Upstream::start("beta"));
    let host = probe_host(&up, &beta, "");
    let c = client();
    let r = c.get(host.url("/hello")).send().unwrap();
    assert_eq!(r.text().unwrap(), "hello world\n");
    // Post saw the final status and the bytes actually written: it ran
    // once the response was complete.
    let last = eventually("post to record /hello", || {
        let t = c.get(host.url("/kv/last")).send().unwrap().text().unwrap();
        t.ends_with("/hello").then_some(t)
    });
    assert_eq!(last, "200 12 /hello");
}

#[test]
fn kv_increments_are_shared_across_requests_and_instances() {
    let (up, beta) = (Upstream::start("app"), Upstream::start("beta"));
    // A fresh instance for every request: the counter lives in the host.
    let host = probe_host(&up, &beta, "isolation = \"request\"");
    let c = client();
    let seen: Vec<String> = (0..3)
        .map(|_| c.get(host.url("/kv/incr")).send().unwrap().text().unwrap())
        .collect();
    assert_eq!(seen, ["1", "2", "3"]);

    // Concurrent clients: no increment is lost.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let c = client();
                for _ in 0..25 {
                    assert_eq!(c.get(host.url("/kv/incr")).send().unwrap().status(), 200);
                }
            });
        }
    });
    assert_eq!(
        c.get(host.url("/kv/incr")).send().unwrap().text().unwrap(),
        "104"
    );
}

#[test]
fn prime_rewrites_and_prepare_responds_or_forwards() {
    let (up, beta) = (Upstream::start("app"), Upstream::start("beta"));
    let host = probe_host(&up, &beta, "");
    let c = client();

    // Prime rewrites the URI; routing and the upstream see the new one.
    let r = c.get(host.url("/rewrite/echo?q=1")).send().unwrap();
    assert_eq!(r.headers()["x-probe-path"], "/rewrite/echo");
    let echo: serde_json::Value = r.json().unwrap();
    assert_eq!(echo["uri"], "/echo?q=1");
    assert_eq!(echo["upstream"], "app");

    // Prepare answers itself.
    let r = c.get(host.url("/prepared")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "prepared by probe\n");

    // Prepare forwards to a named upstream with a new path and a header.
    let r = c
        .get(host.url("/any"))
        .header("x-forward-to", "beta")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().unwrap();
    assert_eq!(echo["upstream"], "beta");
    assert_eq!(echo["uri"], "/forwarded?from=probe");
    assert_eq!(echo["headers"]["x-via"], serde_json::json!(["probe"]));

    // A forward to an upstream the config does not declare fails closed,
    // naming the plugin and the request id, and the host keeps serving.
    let r = c
        .get(host.url("/any"))
        .header("x-forward-to", "nowhere")
        .header("x-request-id", "req-77")
        .send()
        .unwrap();
    assert_eq!(r.status(), 500);
    let body = r.text().unwrap();
    assert!(
        body.contains("plugin `probe`") && body.contains("req-77"),
        "{body}"
    );
    assert!(
        !body.contains("nowhere"),
        "the error body leaks details: {body}"
    );
    assert_eq!(c.get(host.url("/hello")).send().unwrap().status(), 200);
    assert!(host
        .log()
        .contains("forward to undeclared upstream `nowhere`"));
}

#[test]
fn a_route_scoped_plugin_stays_out_of_other_routes() {
    let (up, beta) = (Upstream::start("app"), Upstream::start("beta"));
    let host = probe_host(&up, &beta, "routes = [\"hello\"]");
    let c = client();
    let r = c.get(host.url("/hello")).send().unwrap();
    assert_eq!(r.headers()["x-probe-phases"], "rpbk");

    let calls = || -> u64 {
        let v: serde_json::Value = host.admin_json("/plugins");
        v["plugins"][0]["calls"].as_u64().unwrap()
    };
    // Five phases for /hello; post runs after the response, so wait for it.
    eventually("five calls for /hello", || (calls() == 5).then_some(()));
    for _ in 0..10 {
        let r = c.get(host.url("/echo")).send().unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("x-probe-phases").is_none());
    }
    // Out of scope, the request never entered the plugin.
    assert_eq!(calls(), 5);
}

#[test]
fn bodies_over_the_present_limit_pass_untouched() {
    let (up, beta) = (Upstream::start("app"), Upstream::start("beta"));
    let big = "hello world, ".repeat(20);
    let config = format!(
        "[server]\npresent_max_bytes = 100\n{}\n\
         [[routes]]\nname = \"big\"\npath = \"/big\"\nrespond = {{ body = \"{big}\" }}\n\n\
         [[routes]]\nname = \"small\"\npath = \"/small\"\nrespond = {{ body = \"hello\" }}\n\n\
         [[plugins]]\nname = \"probe\"\ncapabilities = [\"kv\"]\n",
        proxy_to_upstreams(
            &[
                ("app", up.addr.to_string()),
                ("beta", beta.addr.to_string())
            ],
            5000
        )
    );
    let host = Host::builder()
        .plugin("probe", "probe")
        .config(&config)
        .start();
    let c = client();
    let shout = |path: &str| {
        c.get(host.url(path))
            .header("x-shout", "1")
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert_eq!(shout("/small"), "HELLO");
    assert_eq!(shout("/big"), big);
    // The upstream's echo is over 100 bytes too.
    let echoed = shout("/echo");
    assert!(echoed.contains(r#""uri":"/echo""#), "{echoed}");
}
