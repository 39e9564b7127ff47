//! The first-party rate-limit plugin (plugins/rate-limit) as an operator
//! configures it from its README: per client IP, per header, per route,
//! under concurrent clients, and without a limit.

use kavro_e2e::{client, concurrent_admitted, Host};

fn start(routes: &str, settings: &str) -> Host {
    let config =
        format!("{routes}[[plugins]]\nname = \"rate-limit\"\ncapabilities = [\"kv\"]\n{settings}");
    Host::builder()
        .plugin("rate_limit", "rate-limit")
        .config(&config)
        .start()
}

fn home() -> String {
    kavro_e2e::respond_route("home", "/*", "ok")
}

type Seen = (u16, Option<String>, Option<String>);

/// Status, RateLimit-Remaining and Retry-After of a GET.
fn hit(host: &Host, path: &str, headers: &[(&str, &str)]) -> Seen {
    let mut req = client().get(host.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().unwrap();
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    (
        r.status().as_u16(),
        h("ratelimit-remaining"),
        h("retry-after"),
    )
}

#[test]
fn a_client_over_its_limit_gets_429_with_the_ratelimit_headers() {
    let mut host = start(
        &home(),
        "[plugins.config]\nlimit = \"3\"\nwindow_s = \"60\"\n",
    );
    for left in ["2", "1", "0"] {
        assert_eq!(hit(&host, "/", &[]), (200, Some(left.into()), None));
    }
    let r = client().get(host.url("/")).send().unwrap();
    assert_eq!(r.status(), 429);
    let h = |n: &str| r.headers()[n].to_str().unwrap().to_string();
    assert_eq!(h("ratelimit-limit"), "3");
    assert_eq!(h("ratelimit-remaining"), "0");
    assert_eq!(h("ratelimit-policy"), "3;w=60");
    let retry: u64 = h("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(h("ratelimit-reset"), retry.to_string());
    assert!(r.text().unwrap().contains("over 3 requests in 60 s"));
    assert!(host.terminate(std::time::Duration::from_secs(10)).success());
}

#[test]
fn concurrent_clients_never_get_more_than_the_limit() {
    let host = start(
        &home(),
        "[plugins.config]\nlimit = \"25\"\nwindow_s = \"60\"\n",
    );
    // 32 connections at once, 5 requests each, all from 127.0.0.1.
    let admitted = concurrent_admitted(&host, 32, 5, &[]);
    assert_eq!(admitted, 25);
    // Refused requests took their count back: the window is full, not over.
    assert_eq!(hit(&host, "/", &[]).0, 429);
}

#[test]
fn keys_by_header_and_by_route() {
    let host = start(
        &home(),
        "[plugins.config]\nlimit = \"1\"\nkey = \"header:x-api-key\"\n",
    );
    assert_eq!(hit(&host, "/", &[("x-api-key", "a")]).0, 200);
    assert_eq!(hit(&host, "/", &[("x-api-key", "a")]).0, 429);
    assert_eq!(hit(&host, "/", &[("x-api-key", "b")]).0, 200);
    // Without the header: by client IP.
    assert_eq!(hit(&host, "/", &[]).0, 200);
    assert_eq!(hit(&host, "/", &[]).0, 429);

    // One count for the route the entry is scoped to, whoever asks; the
    // other route is not limited.
    let routes = format!(
        "{}{}",
        kavro_e2e::respond_route("api", "/api/*", "api"),
        home()
    );
    let host = start(
        &routes,
        "routes = [\"api\"]\n[plugins.config]\nlimit = \"2\"\nkey = \"route\"\n",
    );
    assert_eq!(hit(&host, "/api/a", &[("x-api-key", "a")]).0, 200);
    assert_eq!(hit(&host, "/api/b", &[("x-api-key", "b")]).0, 200);
    assert_eq!(hit(&host, "/api/c", &[]).0, 429);
    assert_eq!(hit(&host, "/other", &[]), (200, None, None));
}

#[test]
fn without_a_limit_nothing_is_limited() {
    let host = start(&home(), "");
    for _ in 0..5 {
        assert_eq!(hit(&host, "/", &[]), (200, None, None));
    }
    host.assert_logged("no `limit` in the plugin's config: nothing is limited");
}
