//! A real ACME test CA on loopback: pebble, with pebble-challtestsrv as the
//! DNS server its validator asks (every name resolves to 127.0.0.1), for
//! the ACME tests. Debian's `pebble` package has both binaries.
//!
//! The validator checks HTTP-01 on `http_port` and TLS-ALPN-01 on
//! `tls_port` of 127.0.0.1, so a test picks those ports with
//! [`free_port`](crate::free_port), starts pebble with them, then starts the
//! host listening on them.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tls::TestCa;

/// pebble and pebble-challtestsrv; both are killed on drop.
pub struct Pebble {
    pebble: Child,
    challtestsrv: Child,
    /// Config, pebble's own HTTPS certificate, its CA, and the logs.
    pub dir: tempfile::TempDir,
    /// The ACME API (`/dir`).
    pub acme: SocketAddr,
    /// pebble's management API (`/roots/0`).
    pub management: SocketAddr,
    /// The root that signs the certificates pebble issues, in PEM; pebble
    /// makes a new one at every start.
    pub root_pem: String,
}

/// A binary from Debian's package.
fn binary(name: &str) -> PathBuf {
    let mut candidates: Vec<PathBuf> = ["/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(name)));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed (Debian package `pebble`): run ./dev.sh test, which installs it")
        })
}

/// Waits until `ready` holds, failing with `log` if `child` exits or
/// 20 s pass.
fn wait_until(
    what: &str,
    child: &mut Child,
    log: impl Fn() -> String,
    mut ready: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status}:\n{}", log());
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not start:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Pebble {
    /// Starts both and returns once the directory and the root answer.
    /// `http_port` and `tls_port` are where pebble's validator connects on
    /// 127.0.0.1 for HTTP-01 and TLS-ALPN-01.
    pub fn start(http_port: u16, tls_port: u16) -> Pebble {
        let pebble_bin = binary("pebble");
        let challtestsrv_bin = binary("pebble-challtestsrv");
        let dir = tempfile::tempdir().expect("temp dir");
        // pebble's own HTTPS certificate (the package ships none).
        let ca = TestCa::new();
        let https = ca.leaf(&["localhost", "127.0.0.1"]);
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &https.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &https.key_pem).unwrap();

        let acme: SocketAddr = format!("127.0.0.1:{}", crate::free_port()).parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{}", crate::free_port()).parse().unwrap();
        let dns: SocketAddr = format!("127.0.0.1:{}", crate::free_port()).parse().unwrap();
        let dns_management: SocketAddr =
            format!("127.0.0.1:{}", crate::free_port()).parse().unwrap();

        let config = serde_json::json!({
            "pebble": {
                "listenAddress": acme.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();

        let log_file = |name: &str| {
            let f = std::fs::File::create(dir.path().join(name)).unwrap();
            (Stdio::from(f.try_clone().unwrap()), Stdio::from(f))
        };

        // DNS only: A queries get 127.0.0.1 (its default), AAAA none; its
        // own challenge servers are off.
        let (out, err) = log_file("challtestsrv.log");
        let mut challtestsrv = Command::new(challtestsrv_bin)
            .args(["-dns01", &dns.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &dns_management.to_string()])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start pebble-challtestsrv");
        let challtestsrv_log = dir.path().join("challtestsrv.log");
        wait_until(
            "pebble-challtestsrv",
            &mut challtestsrv,
            || std::fs::read_to_string(&challtestsrv_log).unwrap_or_default(),
            || TcpStream::connect(dns).is_ok() && TcpStream::connect(dns_management).is_ok(),
        );

        // No random validation sleeps, no refused nonces, and authorizations
        // never reused: every order (a renewal too) is validated afresh.
        let (out, err) = log_file("pebble.log");
        let pebble = Command::new(pebble_bin)
            .arg("-config")
            .arg(&config_path)
            .arg("-strict=false")
            .args(["-dnsserver", &dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn();
        let pebble = match pebble {
            Ok(p) => p,
            Err(e) => {
                let _ = challtestsrv.kill();
                let _ = challtestsrv.wait();
                panic!("start pebble: {e}");
            }
        };
        let mut p = Pebble {
            pebble,
            challtestsrv,
            dir,
            acme,
            management,
            root_pem: String::new(),
        };

        let client = p.client();
        let dir_url = p.directory_url();
        let root_url = format!("https://{}/roots/0", p.management);
        let log_dir = p.dir.path().to_path_buf();
        let mut root = None;
        wait_until(
            "pebble",
            &mut p.pebble,
            || Pebble::logs_in(&log_dir),
            || {
                let up = client
                    .get(&dir_url)
                    .send()
                    .is_ok_and(|r| r.status().is_success());
                root = up
                    .then(|| client.get(&root_url).send().ok())
                    .flatten()
                    .filter(|r| r.status().is_success())
                    .and_then(|r| r.text().ok())
                    .filter(|t| t.contains("BEGIN CERTIFICATE"));
                root.is_some()
            },
        );
        p.root_pem = root.expect("pebble's root");
        p
    }

    /// The ACME directory URL, for `[tls.acme] directory`.
    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.acme)
    }

    /// The CA of pebble's own HTTPS certificate, for `[tls.acme] directory_ca`.
    pub fn directory_ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A client of pebble's APIs, trusting only [`Pebble::directory_ca`].
    pub fn client(&self) -> reqwest::blocking::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = std::fs::read(self.directory_ca()).expect("pebble's HTTPS CA");
        reqwest::blocking::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("PEM"))
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client")
    }

    /// Both programs' output so far, for failure messages.
    pub fn log(&self) -> String {
        Pebble::logs_in(self.dir.path())
    }

    fn logs_in(dir: &Path) -> String {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        format!(
            "--- pebble ---\n{}--- pebble-challtestsrv ---\n{}",
            read("pebble.log"),
            read("challtestsrv.log")
        )
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.challtestsrv] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
