//! The first-party security-headers plugin (plugins/security-headers) as an
//! operator configures it from its README: the defaults on every kind of
//! response, HSTS only over TLS, the application's own header kept or
//! overridden, a header turned off, 32 connections at once, then SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use kavro_e2e::tls::{https_client, https_url, wait_for_port, TestCa};
use kavro_e2e::{client, free_port, respond_route, Host};

const DEFAULTS: [(&str, &str); 4] = [
    ("content-security-policy", "default-src 'self'"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("x-frame-options", "SAMEORIGIN"),
];

/// A respond route at `/`, one at `/own` that sets its own CSP, and the
/// plugin with `settings` under `[plugins.config]`.
fn config(settings: &str) -> String {
    format!(
        "{}[[routes]]\nname = \"own\"\npath = \"/own\"\nrespond = {{ body = \"own\", headers = {{ content-security-policy = \"default-src https://cdn.example\" }} }}\n\n[[plugins]]\nname = \"security-headers\"\n[plugins.config]\n{settings}\n",
        respond_route("home", "/", "home")
    )
}

fn start(settings: &str) -> Host {
    Host::builder()
        .plugin("security_headers", "security-headers")
        .config(&config(settings))
        .start()
}

fn header(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[test]
fn defaults_on_every_response_and_the_applications_own_header_kept() {
    let mut host = start("");
    // A produced page, a 404 and the application's page, 32 clients at once.
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                let c = client();
                for path in ["/", "/missing", "/own"] {
                    let r = c.get(host.url(path)).send().unwrap();
                    for (name, value) in DEFAULTS {
                        let want = match (path, name) {
                            ("/own", "content-security-policy") => {
                                "default-src https://cdn.example"
                            }
                            _ => value,
                        };
                        assert_eq!(header(&r, name).as_deref(), Some(want), "{path} {name}");
                    }
                    // Plain HTTP: no HSTS, which browsers ignore there.
                    assert_eq!(header(&r, "strict-transport-security"), None, "{path}");
                }
            });
        }
    });
    let p = host.admin_json("/plugins")["plugins"][0].clone();
    assert_eq!(p["failures"], 0, "{p}");
    assert!(host.terminate(Duration::from_secs(10)).success());
}

#[test]
fn settings_override_the_application_and_turn_a_header_off() {
    let host = start(
        "content_security_policy = \"default-src 'none'\"\nx_frame_options = \"\"\noverride = \"true\"",
    );
    for path in ["/", "/own"] {
        let r = client().get(host.url(path)).send().unwrap();
        assert_eq!(
            header(&r, "content-security-policy").as_deref(),
            Some("default-src 'none'"),
            "{path}"
        );
        assert_eq!(header(&r, "x-frame-options"), None, "{path}");
        assert_eq!(
            header(&r, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
    }
}

/// A host serving `config(settings)` over HTTPS too, with `[tls]` lines
/// `tls_extra`: the host, its HTTPS client and port.
fn start_tls(settings: &str, tls_extra: &str) -> (Host, reqwest::blocking::Client, u16) {
    let ca = TestCa::new();
    let leaf = ca.leaf(&["a.test"]);
    let builder = Host::builder().plugin("security_headers", "security-headers");
    leaf.write(&builder.dir.path().join("certs"), "a");
    let port = free_port();
    let config = format!(
        "{}\n[tls]\nlisten = [\"127.0.0.1:{port}\"]\nredirect = false\n{tls_extra}\n\n[[tls.certificates]]\ncert = \"certs/a.pem\"\nkey = \"certs/a.key\"\n",
        config(settings)
    );
    let host = builder.config(&config).start();
    let tls = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(wait_for_port(tls), "{}", host.log());
    let https = https_client(&ca, tls, &["a.test"]).build().unwrap();
    (host, https, port)
}

#[test]
fn hsts_only_over_tls_and_the_listeners_own_kept() {
    let (host, https, port) = start_tls("", "");
    let r = https.get(https_url("a.test", port, "/")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "strict-transport-security").as_deref(),
        Some("max-age=63072000; includeSubDomains")
    );
    let r = client().get(host.url("/")).send().unwrap();
    assert_eq!(header(&r, "strict-transport-security"), None);
    drop(host);

    // The listener's HSTS stands, even with override.
    let (_host, https, port) = start_tls("override = \"true\"", "hsts = { max_age_s = 60 }");
    let r = https.get(https_url("a.test", port, "/")).send().unwrap();
    let hsts = header(&r, "strict-transport-security").unwrap();
    assert!(hsts.starts_with("max-age=60"), "{hsts}");
}
