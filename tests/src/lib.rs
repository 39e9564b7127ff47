//! Harness for the end-to-end tests: starts the real `kavro-host` binary on
//! a loopback port with real wasm plugins, and real upstream HTTP servers.

pub mod pebble;
pub mod php;
pub mod raw;
pub mod realtime;
pub mod redis;
pub mod sites;
pub mod tls;
pub mod upstream;
pub mod websocket;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A one-thread runtime for a test server, and its listener bound to
/// `addr` (port 0: any free one).
pub fn server_runtime(addr: &str) -> (tokio::runtime::Runtime, tokio::net::TcpListener) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    (rt, listener)
}

/// The folder holding the build's binaries (`target/release`); test
/// binaries run from its `deps` folder, benchmark binaries from it directly.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("own binary path");
    let dir = exe.parent().expect("binary folder");
    if dir.ends_with("deps") {
        dir.parent().expect("target dir").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// This crate's folder: from cargo at run time (a target dir shared between
/// clones may hold a build made in another one), else where it was built.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Where `./dev.sh` put the wasm plugins built for the tests.
pub fn wasm_dir() -> PathBuf {
    match std::env::var_os("KAVRO_WASM_DIR") {
        Some(d) => PathBuf::from(d),
        None => bin_dir()
            .parent()
            .expect("target dir")
            .join("wasm32-wasip2/plugin"),
    }
}

/// A built plugin by crate name (`access-log` → `access_log.wasm`).
pub fn wasm(name: &str) -> PathBuf {
    require_build();
    let p = wasm_dir().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        p.is_file(),
        "{} is missing: build the plugins with ./dev.sh test",
        p.display()
    );
    p
}

/// What a finished command printed: its stdout, then its stderr.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// These tests run the release host with wasm plugins that `./dev.sh test`
/// builds first; a plain `cargo test` has neither, and stops here with one
/// line instead of a failure per test.
pub fn require_build() {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| {
        let host = bin_dir().join("kavro-host");
        let plugin = wasm_dir().join("probe.wasm");
        if !host.is_file() || !plugin.is_file() {
            // Past the test harness's capture of `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "kavro-e2e: {} not built; run the tests with ./dev.sh test",
                if host.is_file() { plugin } else { host }.display()
            );
            std::process::exit(2);
        }
    });
}

/// A port free now and not handed out before in this process. The port is
/// released before the host binds it: a second host given the same port
/// would fail to bind it, while its start-up check, which only connects,
/// took the first host for it and its requests went there.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if HANDED_OUT.lock().expect("not poisoned").insert(port) {
            return port;
        }
    }
}

/// A request's or response's headers as (lowercase name, value) pairs.
pub fn header_pairs(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// A running kavro-host; killed on drop.
pub struct Host {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl Host {
    /// A folder of plugins and a config; call `start` on it.
    pub fn builder() -> HostBuilder {
        HostBuilder {
            dir: tempfile::tempdir().expect("temp dir"),
            config: None,
            env: Vec::new(),
            listen_port: None,
            listen_in_config: false,
            args: Vec::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The host's process id (for its memory, in benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The config file the host was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("kavro.toml")
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// Sends SIGHUP, which makes the host reload.
    pub fn sighup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -HUP failed");
    }

    /// A JSON document from the admin listener, e.g. `/plugins`.
    /// `GET /metrics` on the admin listener, as text.
    pub fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .expect("GET /metrics")
            .text()
            .expect("a text body")
    }

    pub fn admin_json(&self, path: &str) -> serde_json::Value {
        client()
            .get(self.admin_url(path))
            .send()
            .and_then(|r| r.json())
            .expect("admin JSON")
    }

    /// `POST /reload` on the admin listener: (status, JSON body).
    pub fn reload(&self) -> (u16, serde_json::Value) {
        let r = client()
            .post(self.admin_url("/reload"))
            .send()
            .expect("reload");
        (r.status().as_u16(), r.json().expect("JSON"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `text` in the log: lines reach the file through the
    /// host's log thread, a moment after what they record.
    pub fn assert_logged(&self, text: &str) {
        eventually(&format!("`{text}` in the log"), || {
            self.log().contains(text).then_some(())
        });
    }

    /// Sends SIGTERM and waits up to `within` for the host to exit; fails
    /// the test, with the log, if it is still running then.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit(within)
    }

    /// Sends a signal (`TERM`, `QUIT`, `HUP`…) to the host process.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit, at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for kavro-host") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "kavro-host still runs {within:?} after the signal:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends raw bytes and returns whatever comes back before the server closes or 2 s pass.
    pub fn raw(&self, bytes: &[u8]) -> String {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // A failed assertion or request: what the host said explains it.
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- the last {} lines of kavro-host's log ---", tail.len());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

pub struct HostBuilder {
    pub dir: tempfile::TempDir,
    config: Option<String>,
    env: Vec<(String, String)>,
    listen_port: Option<u16>,
    listen_in_config: bool,
    args: Vec<String>,
}

impl HostBuilder {
    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// Copies a built plugin into the plugins folder as `<as_name>.wasm`.
    pub fn plugin(self, crate_name: &str, as_name: &str) -> Self {
        std::fs::create_dir_all(self.plugins_dir()).unwrap();
        std::fs::copy(
            wasm(crate_name),
            self.plugins_dir().join(format!("{as_name}.wasm")),
        )
        .unwrap();
        self
    }

    /// A plugin's sidecar settings file.
    pub fn settings(self, name: &str, toml: &str) -> Self {
        std::fs::create_dir_all(self.plugins_dir()).unwrap();
        std::fs::write(self.plugins_dir().join(format!("{name}.toml")), toml).unwrap();
        self
    }

    /// An environment variable for kavro-host.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// A command-line argument for kavro-host, after the harness's own.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    pub fn config(mut self, toml: &str) -> Self {
        self.config = Some(toml.to_string());
        self
    }

    /// The loopback port of the plain listener (`--listen`), for a test
    /// that must know it before the host starts (an ACME CA told where to
    /// send HTTP-01 checks); by default a [`free_port`].
    pub fn listen_port(mut self, port: u16) -> Self {
        self.listen_port = Some(port);
        self
    }

    /// Leaves the traffic listeners to the config's `[server] listen` (no
    /// `--listen`), for a test of how they are written there; that list
    /// must hold `127.0.0.1:PORT` with the port given to
    /// [`HostBuilder::listen_port`], which `start` waits for and
    /// [`Host::addr`] names.
    pub fn listen_in_config(mut self) -> Self {
        self.listen_in_config = true;
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        require_build();
        std::fs::create_dir_all(self.plugins_dir()).unwrap();
        let mut cmd = Command::new(bin_dir().join("kavro-host"));
        cmd.arg("--plugins").arg(self.plugins_dir());
        cmd.arg("--cache-dir").arg(self.dir.path().join("cache"));
        if let Some(c) = &self.config {
            let path = self.dir.path().join("kavro.toml");
            std::fs::write(&path, c).unwrap();
            cmd.arg("--config").arg(path);
        }
        cmd.args(args);
        cmd.args(&self.args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs `kavro-host validate`; returns (success, stdout + stderr).
    pub fn validate(&self) -> (bool, String) {
        let out = self
            .command(&["validate"])
            .output()
            .expect("run kavro-host");
        (out.status.success(), output_text(&out))
    }

    /// Starts the host and waits until it accepts connections.
    pub fn start(self) -> Host {
        let port = self.listen_port.unwrap_or_else(free_port);
        let admin_port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let log = self.dir.path().join("host.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let (addr_arg, admin_arg) = (addr.to_string(), admin.to_string());
        let args: &[&str] = if self.listen_in_config {
            assert!(
                self.listen_port.is_some(),
                "listen_in_config needs listen_port: the port to wait for"
            );
            &["--admin", &admin_arg]
        } else {
            &["--listen", &addr_arg, "--admin", &admin_arg]
        };
        let child = self
            .command(args)
            .env("KAVRO_LOG", "info")
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start kavro-host");
        let mut host = Host {
            child,
            addr,
            admin,
            dir: self.dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = host.child.try_wait() {
                panic!("kavro-host exited with {status}:\n{}", host.log());
            }
            assert!(
                Instant::now() < deadline,
                "kavro-host did not start:\n{}",
                host.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        host
    }
}

/// An HTTP/1.1 client that does not follow redirects.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Config for upstreams named by `(name, addr)` and one catch-all route
/// proxying to the first, named "app".
pub fn proxy_to_upstreams(upstreams: &[(&str, String)], read_timeout_ms: u64) -> String {
    let mut out = String::new();
    for (name, addr) in upstreams {
        out.push_str(&format!(
            "[upstreams.{name}]\ntargets = [\"{addr}\"]\nread_timeout_ms = {read_timeout_ms}\n\n"
        ));
    }
    out.push_str(&format!(
        "[[routes]]\nname = \"app\"\npath = \"/*\"\nproxy = \"{}\"\n",
        upstreams[0].0
    ));
    out
}

/// Polls `f` every 20 ms for up to 10 s until it returns `Some`.
pub fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    eventually_within(Duration::from_secs(10), what, f)
}

/// [`eventually`] with a time limit of its own, for work done at idle
/// priority (compiles), which waits for the CPU the other tests leave.
pub fn eventually_within<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A config with one route that answers `body` on `path`.
pub fn respond_route(name: &str, path: &str, body: &str) -> String {
    format!("[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nrespond = {{ body = \"{body}\" }}\n")
}

/// `config` with a `[[plugins]]` entry for `name` whose `[plugins.config]`
/// holds `values` (TOML lines).
pub fn with_plugin(config: &str, name: &str, values: &str) -> String {
    format!("{config}\n[[plugins]]\nname = \"{name}\"\n[plugins.config]\n{values}\n")
}

/// One answer of a [`burst`]: status, Retry-After in seconds if sent, body.
pub type Answer = (u16, Option<u64>, String);

/// Each of `n` clients sends one GET for `path` at once, released
/// together: each answer, and how long the slowest took.
pub fn burst(host: &Host, n: usize, path: &str) -> (Vec<Answer>, Duration) {
    let start = std::sync::Barrier::new(n);
    let began = Instant::now();
    let answers = std::thread::scope(|s| {
        let workers: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    let c = client();
                    start.wait();
                    let r = c.get(host.url(path)).send().expect("an answer");
                    let status = r.status().as_u16();
                    let wait = r.headers().get("retry-after").map(|v| {
                        let secs: u64 =
                            v.to_str().unwrap().parse().expect("Retry-After in seconds");
                        assert!(secs >= 1, "Retry-After {secs}");
                        secs
                    });
                    (status, wait, r.text().unwrap_or_default())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .collect::<Vec<_>>()
    });
    (answers, began.elapsed())
}

/// `clients` at once, each with its own connection, released together,
/// each making `each` requests with `request`: how many it says went well.
pub fn count_together(
    clients: usize,
    each: usize,
    request: impl Fn(&reqwest::blocking::Client) -> bool + Sync,
) -> usize {
    let start = std::sync::Barrier::new(clients);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let c = client();
                    start.wait();
                    (0..each).filter(|_| request(&c)).count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

/// `clients` at once, each sending `each` GETs for `/` with `headers`: how
/// many were answered 200. Every other answer must be a 429 with
/// `Retry-After`.
pub fn concurrent_admitted(
    host: &Host,
    clients: usize,
    each: usize,
    headers: &[(&str, &str)],
) -> usize {
    count_together(clients, each, |c| {
        let mut req = c.get(host.url("/"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().expect("an answer");
        match r.status().as_u16() {
            200 => true,
            429 => {
                assert!(r.headers().contains_key("retry-after"));
                false
            }
            other => panic!("status {other}"),
        }
    })
}
