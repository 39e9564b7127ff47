//! `[server] trusted_proxies`: only a trusted peer's X-Forwarded-For names
//! the client, for the upstream and for plugins alike.

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, Host};

fn host(upstream: &Upstream, server: &str) -> Host {
    let config = format!(
        "[server]\n{server}\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\
         [[routes]]\nname = \"proxied\"\npath = \"/*\"\nproxy = \"app\"\n\
         [[plugins]]\nname = \"rate-limit\"\ncapabilities = [\"kv\"]\n\
         [plugins.config]\nlimit = \"1\"\n",
        upstream.addr
    );
    Host::builder()
        .plugin("rate_limit", "rate-limit")
        .config(&config)
        .start()
}

/// Status and the X-Forwarded-For the upstream received.
fn get(host: &Host, xff: Option<&str>) -> (u16, String) {
    let mut req = client().get(host.url("/x"));
    if let Some(v) = xff {
        req = req.header("x-forwarded-for", v);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    if status != 200 {
        return (status, String::new());
    }
    let echo: serde_json::Value = r.json().unwrap();
    (
        status,
        echo["headers"]["x-forwarded-for"][0]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

#[test]
fn a_trusted_proxy_names_the_client() {
    let upstream = Upstream::start("app");
    let host = host(
        &upstream,
        "trusted_proxies = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n",
    );
    // Kept and appended to; the client is the rightmost untrusted hop, and
    // the rate limit (keyed by client IP) counts it, not the proxy.
    assert_eq!(
        get(&host, Some("6.6.6.6, 1.2.3.4, 10.0.0.5")),
        (200, "6.6.6.6, 1.2.3.4, 10.0.0.5, 127.0.0.1".into())
    );
    assert_eq!(get(&host, Some("1.2.3.4")).0, 429);
    assert_eq!(get(&host, Some("5.6.7.8")).0, 200);
    // No header: the proxy itself is the client.
    assert_eq!(get(&host, None), (200, "127.0.0.1".into()));
}

#[test]
fn an_untrusted_peer_cannot_name_a_client() {
    let upstream = Upstream::start("app");
    let host = host(&upstream, "trusted_proxies = [\"10.0.0.0/8\"]\n");
    assert_eq!(get(&host, Some("1.2.3.4")), (200, "127.0.0.1".into()));
    // Another forged address is still 127.0.0.1, already counted.
    assert_eq!(get(&host, Some("5.6.7.8")).0, 429);
}

#[test]
fn a_bad_entry_is_refused_with_a_hint() {
    let (ok, out) = Host::builder()
        .config("[server]\ntrusted_proxies = [\"10.0.0.0/40\"]\n")
        .validate();
    assert!(!ok, "{out}");
    assert!(out.contains("server.trusted_proxies"), "{out}");
    assert!(
        out.contains("`10.0.0.0/40` is not an address or a CIDR"),
        "{out}"
    );
}
