//! HTTPS end to end (docs/tls.md): certificates chosen by SNI, HTTP/2 and
//! HTTP/1.1 by ALPN, plain HTTP redirected, HSTS, certificate files
//! replaced under load, broken certificates refused, bad bytes on the TLS
//! port, the scheme as requests and plugins see it, TLS to upstreams.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kavro_e2e::tls::{
    handshake, handshake_tls12, handshake_twice, https_client, https_url, wait_for_port, Leaf,
    TestCa, TlsUpstream,
};
use kavro_e2e::upstream::Upstream;
use kavro_e2e::{
    client, eventually, eventually_within, free_port, proxy_to_upstreams, respond_route,
    with_plugin, Host, HostBuilder,
};

/// What a browser offers.
const ALPN: &[&str] = &["h2", "http/1.1"];

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The route every test serves.
fn hello() -> String {
    respond_route("hello", "/hello", "hello")
}

/// A `[tls]` table listening on `port`, with `extra` lines of its own, and
/// one `[[tls.certificates]]` per stem: `certs/STEM.pem` and
/// `certs/STEM.key`, relative to the config file.
fn tls_section(port: u16, extra: &str, stems: &[&str]) -> String {
    let mut out = format!("[tls]\nlisten = [\"127.0.0.1:{port}\"]\n{extra}\n");
    for stem in stems {
        out.push_str(&format!(
            "\n[[tls.certificates]]\ncert = \"certs/{stem}.pem\"\nkey = \"certs/{stem}.key\"\n"
        ));
    }
    out
}

/// The folder beside the config that `tls_section` names.
fn certs_dir(builder: &HostBuilder) -> PathBuf {
    builder.dir.path().join("certs")
}

/// Starts the host and waits for its TLS listener on `port` too.
fn start_tls(builder: HostBuilder, config: &str, port: u16) -> (Host, SocketAddr) {
    let host = builder.config(config).start();
    let tls = loopback(port);
    assert!(
        wait_for_port(tls),
        "the TLS listener {tls} did not open:\n{}",
        host.log()
    );
    (host, tls)
}

/// A host serving `/hello` over HTTPS on a fresh port with `leaf` as
/// `certs/a.pem` (and its key), `extra` lines under `[tls]`.
fn hello_host(leaf: &Leaf, extra: &str) -> (Host, SocketAddr) {
    let builder = Host::builder();
    leaf.write(&certs_dir(&builder), "a");
    let port = free_port();
    let config = format!("{}\n{}", hello(), tls_section(port, extra, &["a"]));
    start_tls(builder, &config, port)
}

/// The leaf certificate a fresh handshake with `sni` is presented.
fn presented(tls: SocketAddr, sni: Option<&str>) -> Vec<u8> {
    handshake(tls, sni, ALPN)
        .unwrap_or_else(|e| panic!("handshake with SNI {sni:?}: {e}"))
        .cert
}

/// Which of the `known` certificates `cert` is, by label.
fn which(cert: &[u8], known: &[(&str, &Leaf)]) -> String {
    known
        .iter()
        .find(|(_, leaf)| leaf.der() == cert)
        .map_or("an unknown certificate".to_string(), |(label, _)| {
            label.to_string()
        })
}

/// Log lines written after byte `mark` of the log.
fn log_since(host: &Host, mark: usize) -> Vec<String> {
    host.log()
        .get(mark..)
        .unwrap_or("")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The exact name gets its certificate, a name one label under a wildcard
/// gets the wildcard's, and an unknown name, a name two labels under the
/// wildcard and no SNI at all get the first (default) certificate; with
/// `unknown_name = "refuse"` those handshakes fail while known names still
/// work. Diagnostics and metrics list the certificates served.
#[test]
fn sni_picks_the_exact_name_then_the_wildcard_then_the_first_certificate() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let w = ca.leaf(&["*.w.test"]);
    let known = [("a.test", &a), ("*.w.test", &w)];
    let start = |extra: &str| {
        let builder = Host::builder();
        a.write(&certs_dir(&builder), "a");
        w.write(&certs_dir(&builder), "w");
        let port = free_port();
        let config = format!("{}\n{}", hello(), tls_section(port, extra, &["a", "w"]));
        (start_tls(builder, &config, port), port)
    };

    let ((host, tls), port) = start("");
    for (sni, expected) in [
        (Some("a.test"), "a.test"),
        (Some("x.w.test"), "*.w.test"),
        (Some("unknown.test"), "a.test"),
        (Some("deep.x.w.test"), "a.test"),
        (None, "a.test"),
    ] {
        assert_eq!(which(&presented(tls, sni), &known), expected, "SNI {sni:?}");
    }
    // A verifying client accepts both names.
    let https = https_client(&ca, tls, &["a.test", "x.w.test"])
        .build()
        .unwrap();
    for name in ["a.test", "x.w.test"] {
        let r = https.get(https_url(name, port, "/hello")).send().unwrap();
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.text().unwrap(), "hello", "{name}");
    }
    let d = host.admin_json("/diagnostics");
    let listed = d["tls"].to_string();
    assert!(
        listed.contains("a.test") && listed.contains("*.w.test") && listed.contains("file"),
        "{d}"
    );
    let metrics = host.metrics();
    assert!(
        metrics.lines().any(|l| {
            l.starts_with("kavro_tls_certificate_expiry_seconds") && l.contains("\"a.test\"")
        }),
        "{metrics}"
    );
    drop(host);

    let ((_host, tls), _) = start("unknown_name = \"refuse\"");
    for sni in [Some("unknown.test"), Some("deep.x.w.test"), None] {
        if let Ok(h) = handshake(tls, sni, ALPN) {
            panic!(
                "SNI {sni:?} was served {} with unknown_name = \"refuse\"",
                which(&h.cert, &known)
            );
        }
    }
    assert_eq!(which(&presented(tls, Some("a.test")), &known), "a.test");
    assert_eq!(which(&presented(tls, Some("x.w.test")), &known), "*.w.test");
}

/// HTTPS negotiates HTTP/2 by ALPN when the client offers it and HTTP/1.1
/// when that is all it offers (or it offers nothing), over TLS 1.3 and
/// TLS 1.2, and a client's second connection resumes its session; then
/// SIGTERM with HTTPS keep-alive connections open (HTTP/2
/// and HTTP/1.1, idle between requests) exits cleanly and promptly.
#[test]
fn alpn_negotiates_h2_or_http11_and_sigterm_exits_cleanly_with_connections_open() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let (mut host, tls) = hello_host(&a, "");
    let url = https_url("a.test", tls.port(), "/hello");

    let h2 = https_client(&ca, tls, &["a.test"]).build().unwrap();
    let r = h2.get(&url).send().unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "hello");

    let h1 = https_client(&ca, tls, &["a.test"])
        .http1_only()
        .build()
        .unwrap();
    let r = h1.get(&url).send().unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "hello");

    let mut only_h1 = handshake(tls, Some("a.test"), &["http/1.1"]).unwrap();
    assert_eq!(only_h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(
        only_h1.get("a.test", "/hello").unwrap(),
        (200, "hello".to_string())
    );
    let only_h2 = handshake(tls, Some("a.test"), &["h2"]).unwrap();
    assert_eq!(only_h2.alpn.as_deref(), Some(&b"h2"[..]));
    let mut no_alpn = handshake(tls, Some("a.test"), &[]).unwrap();
    assert_eq!(no_alpn.alpn, None);
    assert_eq!(no_alpn.get("a.test", "/hello").unwrap().0, 200);

    let tls12_h2 = handshake_tls12(tls, Some("a.test"), ALPN).unwrap();
    assert_eq!(tls12_h2.version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(tls12_h2.alpn.as_deref(), Some(&b"h2"[..]));
    let mut tls12 = handshake_tls12(tls, Some("a.test"), &["http/1.1"]).unwrap();
    assert_eq!(tls12.get("a.test", "/hello").unwrap().0, 200);

    // Sessions resume.
    let (first, second) = handshake_twice(tls, Some("a.test"), "a.test").unwrap();
    assert!(
        !first.resumed && second.resumed,
        "the session was not resumed"
    );
    assert_eq!(which(&second.cert, &[("a.test", &a)]), "a.test");

    // The same connection serves a second request: it is kept alive.
    assert_eq!(only_h1.get("a.test", "/hello").unwrap().0, 200);
    assert_eq!(h2.get(&url).send().unwrap().status(), 200);

    let status = host.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit {status}:\n{}", host.log());
    drop((only_h1, only_h2, no_alpn, tls12_h2, tls12, h1, h2));
}

/// A plain listener answers every request 308 to the same URL on https://
/// at the TLS listener's port (the port left out when `https_port` is
/// 443), except ACME challenges; `hsts` puts Strict-Transport-Security on
/// HTTPS responses, errors included, and never on plain ones.
#[test]
fn plain_http_redirects_to_https_except_acme_challenges_and_hsts_is_https_only() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let (host, tls) = hello_host(&a, "hsts = { max_age_s = 600, include_subdomains = true }");
    let port = tls.port();
    let plain = |host: &Host, method: reqwest::Method, path: &str| {
        let body = if method == reqwest::Method::POST {
            "a=1"
        } else {
            ""
        };
        client()
            .request(method, host.url(path))
            .header("host", format!("a.test:{}", host.addr.port()))
            .body(body)
            .send()
            .unwrap()
    };
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let r = plain(&host, method.clone(), "/x?y=1");
        assert_eq!(r.status(), 308, "{method}");
        assert_eq!(
            r.headers()["location"],
            format!("https://a.test:{port}/x?y=1").as_str(),
            "{method}"
        );
        assert!(
            r.headers().get("strict-transport-security").is_none(),
            "HSTS on plain HTTP: {:?}",
            r.headers()
        );
    }
    let r = plain(
        &host,
        reqwest::Method::GET,
        "/.well-known/acme-challenge/abc",
    );
    assert_eq!(r.status(), 404, "an ACME challenge was redirected");
    assert!(r.headers().get("strict-transport-security").is_none());

    let https = https_client(&ca, tls, &["a.test"]).build().unwrap();
    for (path, status) in [("/hello", 200), ("/nowhere", 404)] {
        let r = https.get(https_url("a.test", port, path)).send().unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(
            r.headers()["strict-transport-security"],
            "max-age=600; includeSubDomains",
            "{path}"
        );
    }
    drop(host);

    // Behind a load balancer mapping 443 to the listener: no port written.
    let (host, _) = hello_host(&a, "https_port = 443");
    let r = plain(&host, reqwest::Method::GET, "/x?y=1");
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "https://a.test/x?y=1");
}

/// `redirect = false` under `[tls]` serves plain HTTP as it is (without
/// HSTS); a plain listener written as `{ address, redirect = false }` opts
/// out on its own while the other plain listener still redirects.
#[test]
fn redirects_turn_off_for_every_listener_or_for_one() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let (host, _) = hello_host(&a, "redirect = false\nhsts = { max_age_s = 600 }");
    let r = client().get(host.url("/hello")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("strict-transport-security"), None);
    assert_eq!(r.text().unwrap(), "hello");
    drop(host);

    let (redirecting, opted_out, port) = (free_port(), free_port(), free_port());
    let builder = Host::builder().listen_port(redirecting).listen_in_config();
    a.write(&certs_dir(&builder), "a");
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:{redirecting}\", \
         {{ address = \"127.0.0.1:{opted_out}\", redirect = false }}]\n\n{}\n{}",
        hello(),
        tls_section(port, "", &["a"])
    );
    let (host, _) = start_tls(builder, &config, port);
    assert!(
        wait_for_port(loopback(opted_out)),
        "the listener {opted_out} did not open:\n{}",
        host.log()
    );
    let r = client()
        .get(format!("http://127.0.0.1:{redirecting}/hello"))
        .header("host", "a.test")
        .send()
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("https://a.test:{port}/hello").as_str()
    );
    let r = client()
        .get(format!("http://127.0.0.1:{opted_out}/hello"))
        .header("host", "a.test")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "hello");
}

/// Replacing the certificate and key files (written aside, renamed over)
/// while 32 clients make HTTPS requests on kept-alive connections fails
/// none of them; new handshakes then present the new certificate, and a
/// connection opened before the swap keeps serving. A config reload that
/// keeps the certificate changes nothing.
#[test]
fn certificate_files_replaced_under_load_fail_no_request() {
    let ca = TestCa::new();
    let old = ca.leaf(&["a.test"]);
    let new = ca.leaf(&["a.test"]);
    let known = [("old", &old), ("new", &new)];
    let builder = Host::builder();
    let (cert, key) = old.write(&certs_dir(&builder), "a");
    let port = free_port();
    let config = format!("{}\n{}", hello(), tls_section(port, "", &["a"]));
    let (host, tls) = start_tls(builder, &config, port);
    assert_eq!(which(&presented(tls, Some("a.test")), &known), "old");
    let url = https_url("a.test", port, "/hello");

    let mut held = handshake(tls, Some("a.test"), &["http/1.1"]).unwrap();
    assert_eq!(held.get("a.test", "/hello").unwrap().0, 200);

    let stop = AtomicBool::new(false);
    let served = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                // One client each: its connection is kept alive throughout.
                let c = https_client(&ca, tls, &["a.test"]).build().unwrap();
                // Bounded: at most 100 000 requests a client.
                for _ in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match c.get(&url).send() {
                        Ok(r) if r.status() == 200 => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failures
                            .lock()
                            .unwrap()
                            .push(format!("status {}", r.status())),
                        Err(e) => failures.lock().unwrap().push(format!("{e:?}")),
                    }
                }
            });
        }
        eventually("the clients to be served", || {
            (served.load(Ordering::Relaxed) > 0).then_some(())
        });
        std::thread::sleep(Duration::from_secs(1));
        new.replace(&cert, &key);
        // The files are checked every second; the CPU is shared with 32
        // clients.
        eventually_within(
            Duration::from_secs(20),
            "a handshake presenting the new certificate",
            || (which(&presented(tls, Some("a.test")), &known) == "new").then_some(()),
        );
        while started.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let served = served.load(Ordering::Relaxed);
    assert!(served > 32, "only {served} requests during the swap");

    // The connection opened on the old certificate was not dropped.
    assert_eq!(which(&held.cert, &known), "old");
    assert_eq!(held.get("a.test", "/hello").unwrap().0, 200);

    let (status, out) = host.reload();
    assert_eq!(status, 200, "{out}");
    assert_eq!(which(&presented(tls, Some("a.test")), &known), "new");
    let c = https_client(&ca, tls, &["a.test"]).build().unwrap();
    assert_eq!(c.get(&url).send().unwrap().status(), 200);
    assert_eq!(held.get("a.test", "/hello").unwrap().0, 200);
}

/// `kavro-host validate` refuses a key that does not match its
/// certificate, an expired certificate and a missing file, naming the file
/// each time; the same config with a good pair passes.
#[test]
fn validate_refuses_a_mismatched_key_an_expired_certificate_and_a_missing_file() {
    let ca = TestCa::new();
    let good = ca.leaf(&["a.test"]);
    let other = ca.leaf(&["a.test"]);
    let check = |write: &dyn Fn(&std::path::Path)| {
        let builder = Host::builder();
        let certs = certs_dir(&builder);
        std::fs::create_dir_all(&certs).unwrap();
        write(&certs);
        let config = format!("{}\n{}", hello(), tls_section(free_port(), "", &["site"]));
        builder.config(&config).validate()
    };
    let names_the_file = |out: &str| out.contains("site.pem") || out.contains("site.key");

    let (ok, out) = check(&|d| {
        good.write(d, "site");
    });
    assert!(ok, "a good pair was refused:\n{out}");

    let (ok, out) = check(&|d| {
        good.with_key_of(&other).write(d, "site");
    });
    assert!(!ok, "a mismatched key passed:\n{out}");
    assert!(names_the_file(&out), "{out}");

    let (ok, out) = check(&|d| {
        ca.expired_leaf(&["a.test"]).write(d, "site");
    });
    assert!(!ok, "an expired certificate passed:\n{out}");
    assert!(out.contains("site.pem"), "{out}");
    assert!(out.to_lowercase().contains("expire"), "{out}");

    let (ok, out) = check(&|d| {
        let (cert, _) = good.write(d, "site");
        std::fs::remove_file(cert).unwrap();
    });
    assert!(!ok, "a missing certificate file passed:\n{out}");
    assert!(out.contains("site.pem"), "{out}");
}

/// A running host whose certificate files are replaced with a pair that
/// does not match logs the refusal (naming the file) and keeps presenting
/// the certificate it had; a good pair written afterwards is taken.
#[test]
fn a_broken_pair_dropped_in_is_refused_and_the_running_certificate_stays() {
    let ca = TestCa::new();
    let old = ca.leaf(&["a.test"]);
    let broken = ca.leaf(&["a.test"]).with_key_of(&ca.leaf(&["a.test"]));
    let fixed = ca.leaf(&["a.test"]);
    let known = [("old", &old), ("broken", &broken), ("fixed", &fixed)];
    let builder = Host::builder();
    let (cert, key) = old.write(&certs_dir(&builder), "a");
    let port = free_port();
    let config = format!("{}\n{}", hello(), tls_section(port, "", &["a"]));
    let (host, tls) = start_tls(builder, &config, port);
    assert_eq!(which(&presented(tls, Some("a.test")), &known), "old");

    let mark = host.log().len();
    broken.replace(&cert, &key);
    eventually("the refusal, naming the file, in the log", || {
        log_since(&host, mark)
            .iter()
            .any(|l| {
                l.to_lowercase().contains("refused") && (l.contains("a.pem") || l.contains("a.key"))
            })
            .then_some(())
    });
    // Past another check of the files, new handshakes still get the old one.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(which(&presented(tls, Some("a.test")), &known), "old");
    let c = https_client(&ca, tls, &["a.test"]).build().unwrap();
    let url = https_url("a.test", port, "/hello");
    assert_eq!(c.get(&url).send().unwrap().status(), 200);

    fixed.replace(&cert, &key);
    eventually("the fixed certificate to be presented", || {
        (which(&presented(tls, Some("a.test")), &known) == "fixed").then_some(())
    });
    let c = https_client(&ca, tls, &["a.test"]).build().unwrap();
    assert_eq!(c.get(&url).send().unwrap().status(), 200);
}

/// Plain HTTP, garbage and a truncated ClientHello sent to the TLS port
/// each get the connection closed within seconds (no hang), and the
/// listener goes on serving HTTPS.
#[test]
fn plain_http_and_broken_client_hellos_on_the_tls_port_are_closed_promptly() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let (_host, tls) = hello_host(&a, "");
    // A handshake record whose ClientHello claims 508 bytes and has 34.
    let mut truncated = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    truncated.extend_from_slice(&[7u8; 32]);
    let garbage_record = [&[0x16, 0x03, 0x01, 0x00, 0x10][..], &[0xff; 16]].concat();
    let noise: Vec<u8> = (0..600u32).map(|i| (255 - i % 256) as u8).collect();
    // (what, bytes, then close the client's sending side)
    let cases: [(&str, Vec<u8>, bool); 5] = [
        (
            "plain HTTP",
            b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n".to_vec(),
            false,
        ),
        ("a handshake record of garbage", garbage_record, false),
        ("bytes that are no TLS record", noise, false),
        ("a truncated ClientHello", truncated, true),
        ("nothing", Vec::new(), true),
    ];
    for (what, bytes, half_close) in cases {
        let mut s = TcpStream::connect(tls).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        // The server may close before taking it all: a failed write is fine.
        let _ = s.write_all(&bytes);
        if half_close {
            s.shutdown(Shutdown::Write).unwrap();
        }
        let mut out = Vec::new();
        if let Err(e) = s.read_to_end(&mut out) {
            assert!(
                !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "{what}: the connection is still open after 5 s"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: closed only after {:?}",
            started.elapsed()
        );
    }
    let c = https_client(&ca, tls, &["a.test"]).build().unwrap();
    let r = c
        .get(https_url("a.test", tls.port(), "/hello"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "hello");
}

/// Upstreams are told how a request arrived (`X-Forwarded-Proto: https`
/// over TLS, `http` over plain HTTP), and the redirects plugin's
/// `https = true` sees the scheme: plain requests go to https://, HTTPS
/// ones pass through to the upstream (no redirect loop).
#[test]
fn upstreams_and_plugins_know_a_request_came_over_https() {
    let up = Upstream::start("app");
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let proxy = proxy_to_upstreams(&[("app", up.addr.to_string())], 5000);
    let proto = |r: reqwest::blocking::Response| {
        assert_eq!(r.status(), 200);
        let echo: serde_json::Value = r.json().unwrap();
        echo["headers"]["x-forwarded-proto"].clone()
    };

    let builder = Host::builder();
    a.write(&certs_dir(&builder), "a");
    let port = free_port();
    let config = format!("{proxy}\n{}", tls_section(port, "redirect = false", &["a"]));
    let (host, tls) = start_tls(builder, &config, port);
    let https = https_client(&ca, tls, &["a.test"]).build().unwrap();
    let r = https
        .get(https_url("a.test", port, "/echo"))
        .send()
        .unwrap();
    assert_eq!(proto(r), serde_json::json!(["https"]));
    let h1 = https_client(&ca, tls, &["a.test"])
        .http1_only()
        .build()
        .unwrap();
    let r = h1.get(https_url("a.test", port, "/echo")).send().unwrap();
    assert_eq!(proto(r), serde_json::json!(["https"]));
    let r = client().get(host.url("/echo")).send().unwrap();
    assert_eq!(proto(r), serde_json::json!(["http"]));
    drop(host);

    let builder = Host::builder().plugin("redirects", "redirects");
    a.write(&certs_dir(&builder), "a");
    let port = free_port();
    let config = with_plugin(
        &format!("{proxy}\n{}", tls_section(port, "redirect = false", &["a"])),
        "redirects",
        &format!("https = \"true\"\nhttps_port = \"{port}\""),
    );
    let (host, tls) = start_tls(builder, &config, port);
    let hits = up.hits();
    let r = client()
        .get(host.url("/echo?q=1"))
        .header("host", format!("a.test:{}", host.addr.port()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 308);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("https://a.test:{port}/echo?q=1"));
    assert_eq!(up.hits(), hits, "a redirected request reached the upstream");
    let https = https_client(&ca, tls, &["a.test"]).build().unwrap();
    let r = https.get(&location).send().unwrap();
    assert_eq!(proto(r), serde_json::json!(["https"]));
    assert_eq!(up.hits(), hits + 1);
}

/// TLS to upstreams: verified against the `ca` file with `sni`, a request
/// succeeds; against the system roots it answers 502 and the log names the
/// upstream and why (and a connection verified under another CA is not
/// reused for it); `verify = false` accepts the certificate. An upstream
/// requiring a client certificate answers when `client_cert`/`client_key`
/// are set and refuses (502) when they are not.
#[test]
fn tls_to_upstreams_verifies_against_the_given_ca_and_presents_a_client_certificate() {
    let ca = TestCa::new();
    let up_leaf = ca.leaf(&["up.test"]);
    let server_only = TlsUpstream::start(&up_leaf, None, "secure hello");
    let mutual = TlsUpstream::start(&up_leaf, Some(&ca), "mutual hello");
    let builder = Host::builder();
    let certs = certs_dir(&builder);
    let ca_file = ca.write(&certs, "ca.pem");
    let (client_cert, client_key) = ca.client_cert("kavro.test").write(&certs, "kavro");
    let (p, m) = (server_only.addr.port(), mutual.addr.port());
    let (ca_file, client_cert, client_key) = (
        ca_file.display(),
        client_cert.display(),
        client_key.display(),
    );
    let upstreams = [
        (
            "with_ca",
            format!("targets = [\"https://127.0.0.1:{p}\"]\nsni = \"up.test\"\nca = \"{ca_file}\""),
        ),
        (
            "system_roots",
            format!("targets = [\"https://127.0.0.1:{p}\"]\nsni = \"up.test\""),
        ),
        (
            "unverified",
            format!("targets = [\"https://127.0.0.1:{p}\"]\nsni = \"up.test\"\nverify = false"),
        ),
        (
            "with_client_cert",
            format!(
                "targets = [\"127.0.0.1:{m}\"]\ntls = true\nsni = \"up.test\"\nca = \"{ca_file}\"\n\
                 client_cert = \"{client_cert}\"\nclient_key = \"{client_key}\""
            ),
        ),
        (
            "without_client_cert",
            format!(
                "targets = [\"127.0.0.1:{m}\"]\ntls = true\nsni = \"up.test\"\nca = \"{ca_file}\""
            ),
        ),
    ];
    let mut config = String::new();
    for (name, settings) in &upstreams {
        config.push_str(&format!(
            "[upstreams.{name}]\n{settings}\nread_timeout_ms = 5000\n\n\
             [[routes]]\nname = \"{name}\"\npath = \"/{name}/*\"\nproxy = \"{name}\"\n\n"
        ));
    }
    let host = builder.config(&config).start();
    let get = |name: &str| {
        let r = client()
            .get(host.url(&format!("/{name}/x")))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().unwrap_or_default())
    };

    // Not trusted by the system roots: 502, and the log says why.
    let mark = host.log().len();
    assert_eq!(get("system_roots").0, 502);
    let reason = |mark: usize| {
        eventually("the upstream and the reason in the log", || {
            log_since(&host, mark)
                .into_iter()
                .find(|l| {
                    let lower = l.to_lowercase();
                    l.contains("system_roots")
                        && ["issuer", "cert", "verif"]
                            .iter()
                            .any(|w| lower.contains(w))
                })
                .map(|_| ())
        })
    };
    reason(mark);

    assert_eq!(get("with_ca"), (200, "secure hello".to_string()));
    assert!(
        server_only.sni_seen().iter().any(|n| n == "up.test"),
        "SNI sent: {:?}",
        server_only.sni_seen()
    );
    // A pooled connection verified against the test CA must not serve an
    // upstream that trusts only the system roots.
    let mark = host.log().len();
    assert_eq!(get("system_roots").0, 502);
    reason(mark);
    assert_eq!(get("unverified"), (200, "secure hello".to_string()));

    let refused = mutual.refused();
    assert_eq!(get("without_client_cert").0, 502);
    eventually("the upstream to refuse a handshake", || {
        (mutual.refused() > refused).then_some(())
    });
    assert_eq!(get("with_client_cert"), (200, "mutual hello".to_string()));
    assert_eq!(get("without_client_cert").0, 502);
    assert_eq!(mutual.hits(), 1, "only the request with a certificate");
}

/// PHP behind a TLS listener learns how the request arrived: `HTTPS=on`,
/// `REQUEST_SCHEME=https` and the TLS listener's port as `SERVER_PORT`;
/// over the plain listener, no `HTTPS` and `REQUEST_SCHEME=http`.
#[test]
fn fastcgi_over_tls_gets_https_and_the_tls_port() {
    let fpm = kavro_e2e::php::PhpFpm::start(1);
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let builder = Host::builder();
    a.write(&certs_dir(&builder), "a");
    let port = free_port();
    let config = format!(
        "[[routes]]\nname = \"php\"\npath = \"/*.php\"\n\
         [routes.fastcgi]\naddress = \"{}\"\nroot = \"{}\"\n\n{}",
        fpm.address(),
        fpm.root().display(),
        tls_section(port, "redirect = false", &["a"])
    );
    let (host, tls) = start_tls(builder, &config, port);
    let https = https_client(&ca, tls, &["a.test"]).build().unwrap();
    let v: serde_json::Value = https
        .get(https_url("a.test", port, "/server.php"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["HTTPS"], "on");
    assert_eq!(v["REQUEST_SCHEME"], "https");
    assert_eq!(v["SERVER_PORT"], port.to_string());
    let v: serde_json::Value = client()
        .get(host.url("/server.php"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["HTTPS"], serde_json::Value::Null);
    assert_eq!(v["REQUEST_SCHEME"], "http");
    assert_eq!(v["SERVER_PORT"], host.addr.port().to_string());
}

/// A cached route keys HTTP and HTTPS apart: the response stored for one
/// scheme (here the upstream's echo of X-Forwarded-Proto, as an origin's
/// redirect to HTTPS would be) is never served to the other; each scheme
/// then hits its own entry.
#[test]
fn the_cache_keeps_http_and_https_apart() {
    let up = Upstream::start("app");
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let builder = Host::builder();
    a.write(&certs_dir(&builder), "a");
    let port = free_port();
    let config = format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"app\"\npath = \"/*\"\nproxy = \"app\"\n\
         cache = {{ ttl = 60, origin_headers = false }}\n\n{}",
        up.addr,
        tls_section(port, "redirect = false", &["a"])
    );
    let (host, tls) = start_tls(builder, &config, port);
    let https = https_client(&ca, tls, &["a.test"]).build().unwrap();
    let get = |over_tls: bool| {
        let r = if over_tls {
            https
                .get(https_url("a.test", port, "/page"))
                .send()
                .unwrap()
        } else {
            client()
                .get(host.url("/page"))
                .header("host", "a.test")
                .send()
                .unwrap()
        };
        let cache = r.headers()["x-kavro-cache"].to_str().unwrap().to_string();
        let echo: serde_json::Value = r.json().unwrap();
        (cache, echo["headers"]["x-forwarded-proto"].clone())
    };
    assert_eq!(get(false), ("MISS".into(), serde_json::json!(["http"])));
    assert_eq!(get(true), ("MISS".into(), serde_json::json!(["https"])));
    assert_eq!(get(false), ("HIT".into(), serde_json::json!(["http"])));
    assert_eq!(get(true), ("HIT".into(), serde_json::json!(["https"])));
    assert_eq!(up.hits(), 2);
}

/// A stale entry's background refresh, started by an HTTP/2 request over
/// TLS, reaches the origin as that request did (HTTPS), and what it
/// stores answers the next requests; then SIGTERM exits cleanly.
#[test]
fn stale_while_revalidate_refreshes_in_the_background_over_http2() {
    let ca = TestCa::new();
    let a = ca.leaf(&["a.test"]);
    let up = Upstream::start("origin");
    let builder = Host::builder();
    a.write(&certs_dir(&builder), "a");
    let port = free_port();
    let config = format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"cached\"\npath = \"/c/*\"\nproxy = \"app\"\n\
         cache = {{ ttl = \"1s\", stale_while_revalidate = \"30s\" }}\n\n{}",
        up.addr,
        tls_section(port, "", &["a"])
    );
    let (mut host, tls) = start_tls(builder, &config, port);
    let c = https_client(&ca, tls, &["a.test"]).build().unwrap();
    let url = https_url("a.test", tls.port(), "/c/page");
    let get = || {
        let r = c.get(&url).send().unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200);
        let status = r.headers()["x-kavro-cache"].to_str().unwrap().to_string();
        (status, r.text().unwrap())
    };
    let (status, first) = get();
    assert_eq!(status, "MISS");
    std::thread::sleep(Duration::from_millis(1300));
    let (status, stale) = get();
    assert_eq!((status.as_str(), &stale), ("STALE", &first));
    let refreshed = eventually("the background refresh to be stored", || {
        let (status, body) = get();
        (status == "HIT" && body != first).then_some(body)
    });
    assert_eq!(up.hits(), 2, "one refresh");
    assert!(
        refreshed.contains(r#""x-forwarded-proto":["https"]"#),
        "{refreshed}"
    );
    assert!(host.terminate(Duration::from_secs(10)).success());
}

/// `wss://`: a WebSocket over HTTPS passes through a proxy route, and
/// reaches the realtime hub, as over plain HTTP.
#[test]
fn websockets_over_https_pass_through_and_reach_the_hub() {
    use futures_util::SinkExt;
    use kavro_e2e::websocket::WsUpstream;
    use tokio_tungstenite::tungstenite::Message;
    let ca = TestCa::new();
    let leaf = ca.leaf(&["ws.test"]);
    let up = WsUpstream::start();
    let backend = kavro_e2e::realtime::Backend::start();
    let builder = Host::builder();
    leaf.write(&certs_dir(&builder), "a");
    let port = free_port();
    let config = format!(
        "[upstreams.live]\ntargets = [\"{}\"]\n\n[upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\npath = \"/live/*\"\nproxy = \"live\"\n\n\
         [[routes]]\npath = \"/hub\"\nrealtime = {{ backend = \"app\" }}\n\n{}",
        up.addr,
        backend.addr,
        tls_section(port, "", &["a"])
    );
    let (_host, tls) = start_tls(builder, &config, port);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut ws = kavro_e2e::tls::wss(&ca, tls, "ws.test", "/live/a")
            .await
            .unwrap();
        ws.send(Message::text("over tls")).await.unwrap();
        let echo = kavro_e2e::websocket::next_text_of(&mut ws).await;
        assert_eq!(echo.as_deref(), Some("over tls"));
        let mut hub = kavro_e2e::tls::wss(&ca, tls, "ws.test", "/hub")
            .await
            .unwrap();
        let welcome = kavro_e2e::websocket::next_text_of(&mut hub).await.unwrap();
        assert!(welcome.contains("welcome"), "{welcome}");
    });
    assert_eq!(up.opened(), 1);
}
