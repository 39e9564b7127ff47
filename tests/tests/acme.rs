//! ACME (`[tls.acme]`, RFC 8555) against a real test CA, pebble, on
//! loopback: certificates obtained by HTTP-01 and TLS-ALPN-01 and served
//! with their chain, renewed, a placeholder served while the CA is down,
//! and what was stored served again after a restart.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kavro_e2e::pebble::Pebble;
use kavro_e2e::{client, free_port, respond_route, Host};

/// How long a test waits for the CA to issue: the host's first attempt, the
/// validation, and a retry or two after backoff, on a loaded machine.
const ISSUANCE: Duration = Duration::from_secs(90);

/// The body of the one route every test serves.
const BODY: &str = "hello over tls";

/// A host config: one TLS listener on `tls_port`, `[tls.acme]` holding
/// `acme` (TOML lines), and a route answering [`BODY`] on `/hello`.
fn config(tls_port: u16, acme: &str) -> String {
    format!(
        "[tls]\nlisten = [\"127.0.0.1:{tls_port}\"]\n\n[tls.acme]\n{acme}\n\n{}",
        respond_route("hello", "/hello", BODY)
    )
}

/// `[tls.acme]` lines for one domain from `pebble`, stored in `state_dir`,
/// and `extra` lines.
fn from_pebble(
    pebble: &Pebble,
    domain: &str,
    challenge: &str,
    state_dir: &Path,
    extra: &str,
) -> String {
    format!(
        "domains = [\"{domain}\"]\n\
         directory = \"{}\"\n\
         directory_ca = \"{}\"\n\
         contact = [\"mailto:ops@{domain}\"]\n\
         challenge = \"{challenge}\"\n\
         state_dir = \"{}\"\n\
         {extra}",
        pebble.directory_url(),
        pebble.directory_ca().display(),
        state_dir.display(),
    )
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// What an HTTPS request got: the status, the body and the leaf
/// certificate the host presented (DER).
struct Answer {
    status: u16,
    body: String,
    leaf: Vec<u8>,
}

/// `GET https://DOMAIN:PORT/hello` on `tls`, in a new connection (a new
/// handshake). With `root`, the host's chain must verify against it for
/// `domain`; without, any certificate is accepted.
fn https_get(domain: &str, tls: SocketAddr, root: Option<&str>) -> Result<Answer, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .resolve(domain, tls)
        .tls_info(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5));
    let builder = match root {
        Some(pem) => builder.add_root_certificate(
            reqwest::Certificate::from_pem(pem.as_bytes()).expect("root PEM"),
        ),
        None => builder.danger_accept_invalid_certs(true),
    };
    let url = format!("https://{domain}:{}/hello", tls.port());
    let response = builder
        .build()
        .expect("client")
        .get(&url)
        .send()
        .map_err(|e| format!("{url}: {e:?}"))?;
    let status = response.status().as_u16();
    let leaf = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec)
        .ok_or("no peer certificate")?;
    let body = response.text().map_err(|e| e.to_string())?;
    Ok(Answer { status, body, leaf })
}

/// A sample of `/metrics` on the admin listener: the value on the line of
/// `name` whose labels include `labels`.
fn metric(host: &Host, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = client()
        .get(host.admin_url("/metrics"))
        .send()
        .ok()?
        .text()
        .ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once('}')?,
            None if rest.starts_with(' ') => ("", rest),
            None => return None,
        };
        let has = |(k, v): &(&str, &str)| {
            label_text
                .split(',')
                .any(|kv| kv.trim() == format!("{k}=\"{v}\""))
        };
        if !labels.iter().all(has) {
            return None;
        }
        value.trim().parse().ok()
    })
}

/// A counter of `/metrics`, 0 when the host has no line for it yet.
fn counter(host: &Host, name: &str, domain: &str) -> f64 {
    metric(host, name, &[("domain", domain)]).unwrap_or(0.0)
}

/// Polls `f` every 100 ms until it returns `Ok`; after `limit`, fails with
/// its last error and the host's and pebble's logs.
fn wait<T>(
    limit: Duration,
    what: &str,
    host: &Host,
    pebble: Option<&Pebble>,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let last = match f() {
            Ok(v) => return v,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            panic!(
                "timed out after {limit:?} waiting for {what}; last: {last}\n\
                 --- kavro-host ---\n{}\n{}",
                host.log(),
                pebble.map(Pebble::log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a counter to reach `at_least`.
fn wait_counter(
    limit: Duration,
    host: &Host,
    pebble: Option<&Pebble>,
    name: &str,
    domain: &str,
    at_least: f64,
) -> f64 {
    wait(
        limit,
        &format!("{name}{{domain=\"{domain}\"}} >= {at_least}"),
        host,
        pebble,
        || {
            let v = counter(host, name, domain);
            if v >= at_least {
                Ok(v)
            } else {
                Err(format!("{v}"))
            }
        },
    )
}

/// Waits until `domain` is served on `tls` with a chain that verifies
/// against pebble's root, and returns that answer.
fn wait_issued(host: &Host, pebble: &Pebble, domain: &str, tls: SocketAddr) -> Answer {
    let answer = wait(
        ISSUANCE,
        &format!("{domain} served with a certificate from pebble"),
        host,
        Some(pebble),
        || https_get(domain, tls, Some(&pebble.root_pem)),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, BODY);
    answer
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `/diagnostics`' `tls` object, as text.
fn diagnostics_tls(host: &Host) -> String {
    let diagnostics = host.admin_json("/diagnostics");
    let tls = &diagnostics["tls"];
    assert!(tls.is_object(), "no `tls` object: {diagnostics}");
    tls.to_string()
}

/// HTTP-01: the host obtains a certificate for `acme.test` from pebble
/// (whose TLS-ALPN-01 checks go to a closed port) and serves it with its
/// chain, which verifies against pebble's root; the plain listener
/// redirects requests to HTTPS but not the challenge path, so issuance
/// works with redirects on. The metrics, `/diagnostics` and `state_dir`
/// (created 0700) show it. With `renew_before` longer than pebble's 5-year
/// certificates, every check renews, and new handshakes get the new one.
#[test]
fn http_01_obtains_a_certificate_and_renews_it() {
    let (plain, tls, closed) = (free_port(), free_port(), free_port());
    let pebble = Pebble::start(plain, closed);
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("acme");
    let acme = from_pebble(
        &pebble,
        "acme.test",
        "http-01",
        &state_dir,
        "renew_before = \"3650days\"\ncheck_every = \"2s\"\n",
    );
    let host = Host::builder()
        .listen_port(plain)
        .config(&config(tls, &acme))
        .start();

    // Plain HTTP redirects by default; the challenge path is answered
    // there, whatever the token.
    let r = client().get(host.url("/hello")).send().unwrap();
    assert_eq!(r.status().as_u16(), 308);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("https://") && location.ends_with("/hello"),
        "{location}"
    );
    let r = client()
        .get(host.url("/.well-known/acme-challenge/no-such-token"))
        .send()
        .unwrap();
    assert!(
        !r.status().is_redirection(),
        "a challenge path is redirected: {}",
        r.status()
    );

    let first = wait_issued(&host, &pebble, "acme.test", loopback(tls));
    wait_counter(
        Duration::from_secs(10),
        &host,
        Some(&pebble),
        "kavro_acme_renewals_total",
        "acme.test",
        1.0,
    );
    let expiry = metric(
        &host,
        "kavro_tls_certificate_expiry_seconds",
        &[("name", "acme.test"), ("source", "acme")],
    )
    .unwrap_or_else(|| panic!("no expiry metric for acme.test:\n{}", host.log()));
    let year = 365.0 * 86400.0;
    assert!(
        expiry > unix_now() + year && expiry < unix_now() + 6.0 * year,
        "pebble's certificates last 5 years; the metric says {expiry}"
    );
    let tls_diagnostics = diagnostics_tls(&host);
    assert!(tls_diagnostics.contains("acme.test"), "{tls_diagnostics}");

    // The account and the certificate are stored, in a folder only the
    // host's user reads.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "state_dir mode {mode:o}");
    let domain_dir = state_dir.join("acme.test");
    let stored: Vec<_> = std::fs::read_dir(&domain_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", domain_dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        stored
            .iter()
            .any(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("BEGIN CERTIFICATE"))),
        "no certificate in {stored:?}"
    );
    let others = std::fs::read_dir(&state_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "acme.test")
        .count();
    assert!(others >= 1, "no account stored beside acme.test/");

    // Forced renewal: a second certificate, then served.
    wait_counter(
        Duration::from_secs(60),
        &host,
        Some(&pebble),
        "kavro_acme_renewals_total",
        "acme.test",
        2.0,
    );
    wait(
        Duration::from_secs(30),
        "a renewed certificate to be served",
        &host,
        Some(&pebble),
        || {
            let a = https_get("acme.test", loopback(tls), Some(&pebble.root_pem))?;
            if a.leaf != first.leaf {
                Ok(())
            } else {
                Err("still the first certificate".to_string())
            }
        },
    );
}

/// TLS-ALPN-01: the host obtains the certificate by answering pebble's
/// `acme-tls/1` handshake on its TLS listener (pebble's HTTP-01 checks go
/// to a closed port), then serves it with a chain that verifies against
/// pebble's root.
#[test]
fn tls_alpn_01_obtains_a_certificate() {
    let (tls, closed) = (free_port(), free_port());
    let pebble = Pebble::start(closed, tls);
    let state = tempfile::tempdir().unwrap();
    let acme = from_pebble(
        &pebble,
        "alpn.test",
        "tls-alpn-01",
        &state.path().join("acme"),
        "",
    );
    let host = Host::builder().config(&config(tls, &acme)).start();

    wait_issued(&host, &pebble, "alpn.test", loopback(tls));
    wait_counter(
        Duration::from_secs(10),
        &host,
        Some(&pebble),
        "kavro_acme_renewals_total",
        "alpn.test",
        1.0,
    );
}

/// The CA down (nothing listens at the directory's port): the host starts
/// anyway and serves HTTPS with a self-signed placeholder; the failures
/// are counted, retried with backoff, logged with the domain and the
/// reason, and shown in `/diagnostics`.
#[test]
fn a_ca_that_is_down_leaves_a_placeholder_and_counted_failures() {
    let (tls, closed) = (free_port(), free_port());
    let state = tempfile::tempdir().unwrap();
    let acme = format!(
        "domains = [\"down.test\"]\n\
         directory = \"https://127.0.0.1:{closed}/dir\"\n\
         state_dir = \"{}\"\n",
        state.path().join("acme").display()
    );
    let host = Host::builder().config(&config(tls, &acme)).start();

    let answer = wait(
        Duration::from_secs(20),
        "HTTPS with the placeholder",
        &host,
        None,
        || https_get("down.test", loopback(tls), None),
    );
    assert_eq!((answer.status, answer.body.as_str()), (200, BODY));

    wait_counter(
        Duration::from_secs(20),
        &host,
        None,
        "kavro_acme_failures_total",
        "down.test",
        1.0,
    );
    // Retried: the first backoff is 5 s.
    wait_counter(
        Duration::from_secs(30),
        &host,
        None,
        "kavro_acme_failures_total",
        "down.test",
        2.0,
    );
    assert_eq!(
        counter(&host, "kavro_acme_renewals_total", "down.test"),
        0.0
    );

    let names_the_reason = |text: &str| {
        let text = text.to_lowercase();
        text.contains("refused") || text.contains("connect")
    };
    let log = host.log();
    assert!(
        log.lines()
            .any(|l| l.contains("down.test") && names_the_reason(l)),
        "no log line naming down.test and the connection failure:\n{log}"
    );
    let tls_diagnostics = diagnostics_tls(&host);
    assert!(
        tls_diagnostics.contains("down.test") && names_the_reason(&tls_diagnostics),
        "{tls_diagnostics}"
    );

    // Still serving after the failures.
    let answer = https_get("down.test", loopback(tls), None).unwrap();
    assert_eq!(answer.status, 200);
}

/// A restart keeps the certificate: after a first host obtained one (and,
/// its 5 years being far from the default 30 days, did not renew it at its
/// next checks) and exited cleanly, a second host with the same config and
/// `state_dir` serves the same certificate from its first handshake, and
/// asks the CA for none.
#[test]
fn a_restart_serves_the_stored_certificate() {
    let (plain, tls, closed) = (free_port(), free_port(), free_port());
    let pebble = Pebble::start(plain, closed);
    let state = tempfile::tempdir().unwrap();
    let acme = from_pebble(
        &pebble,
        "keep.test",
        "http-01",
        &state.path().join("acme"),
        "check_every = \"2s\"\n",
    );
    let toml = config(tls, &acme);

    let mut first = Host::builder().listen_port(plain).config(&toml).start();
    let issued = wait_issued(&first, &pebble, "keep.test", loopback(tls));
    wait_counter(
        Duration::from_secs(10),
        &first,
        Some(&pebble),
        "kavro_acme_renewals_total",
        "keep.test",
        1.0,
    );
    // Two checks later (every 2 s), still one: nothing was due.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        counter(&first, "kavro_acme_renewals_total", "keep.test"),
        1.0,
        "{}",
        first.log()
    );
    let status = first.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", first.log());

    let second = Host::builder().listen_port(plain).config(&toml).start();
    wait(
        Duration::from_secs(30),
        "the TLS listener",
        &second,
        None,
        || TcpStream::connect(loopback(tls)).map_err(|e| e.to_string()),
    );
    let answer = https_get("keep.test", loopback(tls), Some(&pebble.root_pem))
        .unwrap_or_else(|e| panic!("first handshake: {e}\n{}", second.log()));
    assert_eq!((answer.status, answer.body.as_str()), (200, BODY));
    assert!(
        answer.leaf == issued.leaf,
        "not the certificate the first host obtained"
    );
    assert!(
        metric(
            &second,
            "kavro_tls_certificate_expiry_seconds",
            &[("name", "keep.test"), ("source", "acme")]
        )
        .is_some(),
        "no expiry metric for keep.test"
    );
    // Two checks later, still nothing asked of the CA.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        counter(&second, "kavro_acme_renewals_total", "keep.test"),
        0.0,
        "{}",
        second.log()
    );
    assert_eq!(
        counter(&second, "kavro_acme_failures_total", "keep.test"),
        0.0,
        "{}",
        second.log()
    );
}
