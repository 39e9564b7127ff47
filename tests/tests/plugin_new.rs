//! `kavro-host plugin new`: a plugin folder written for each language,
//! built by its own `./build.sh` and served as it is by kavro-host over
//! real HTTP, with its `NAME.toml` beside it; single-phase folders that
//! `validate` accepts; and what it refuses.
//!
//! The builds use each SDK's toolchain as a plugin author would (Rust's
//! downloads and compiles its dependencies into the folder's own
//! `target/`, about a minute; Python and JavaScript take 10-30 s each).

use std::fs::File;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kavro_e2e::{bin_dir, client, crate_dir, eventually_within, free_port};

const ALL: &str = "prime,prepare,present,package,post";

fn kavro_host() -> PathBuf {
    let host = bin_dir().join("kavro-host");
    assert!(
        host.is_file(),
        "{} is missing: build it with ./dev.sh test",
        host.display()
    );
    host
}

/// This checkout's SDK: the target folder may hold a host built in
/// another clone, whose own sdk/ it would name.
fn sdk() -> PathBuf {
    crate_dir()
        .join("../sdk")
        .canonicalize()
        .expect("the checkout's sdk/")
}

/// `kavro-host plugin new ARGS --dir DIR --sdk SDK`.
fn plugin_new(dir: &Path, args: &[&str]) -> Output {
    Command::new(kavro_host())
        .args(["plugin", "new"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .arg("--sdk")
        .arg(sdk())
        .output()
        .expect("run kavro-host plugin new")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a plugin folder and checks what `plugin new` says it wrote.
fn write_plugin(dir: &Path, name: &str, lang: &str, phases: &str) -> PathBuf {
    let out = plugin_new(dir, &[name, "--lang", lang, "--phases", phases]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let folder = dir.join(name);
    let source = match lang {
        "rust" => "src/lib.rs".to_string(),
        "python" => format!("{}.py", name.replace('-', "_")),
        other => format!("{name}.{other}"),
    };
    for file in [
        source.as_str(),
        &format!("{name}.toml"),
        "README.md",
        "build.sh",
    ] {
        assert!(folder.join(file).is_file(), "{file} not written");
        let line = format!("wrote {}", folder.join(file).display());
        assert!(stdout.contains(&line), "no `{line}` in:\n{stdout}");
    }
    let next = format!("next: cd {} && ./build.sh", folder.display());
    assert!(stdout.contains(&next), "no `{next}` in:\n{stdout}");
    assert!(
        stdout.contains(&format!("plugin try {name}.wasm --path ")),
        "{stdout}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(folder.join("build.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "build.sh's mode");
    folder
}

/// Runs the folder's `./build.sh` (from elsewhere: it changes to its own
/// folder) within `limit`; fails the test with its output otherwise.
fn build(folder: &Path, env: &[(&str, &Path)], limit: Duration) {
    let log_path = folder.with_extension("build.log");
    let log = File::create(&log_path).unwrap();
    let mut child = Command::new(folder.join("build.sh"))
        .current_dir(folder.parent().unwrap())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("run build.sh");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{}/build.sh took over {limit:?}:\n{}",
                folder.display(),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "{}/build.sh failed ({status}):\n{}",
        folder.display(),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

/// `kavro-host validate --plugins FOLDER`: (success, output).
fn validate(folder: &Path) -> (bool, String) {
    let out = Command::new(kavro_host())
        .arg("validate")
        .arg("--plugins")
        .arg(folder)
        .arg("--no-cache")
        .output()
        .expect("run kavro-host validate");
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout + &stderr)
}

/// kavro-host serving a plugin folder; killed on drop.
struct Served {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
}

impl Served {
    /// Serves `folder` with `config`, and waits (compiles included) until
    /// it accepts connections.
    fn start(folder: &Path, work: &Path, config: &str) -> Served {
        let (addr, admin): (SocketAddr, SocketAddr) = (
            format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        );
        let config_path = work.join("kavro.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = work.join("host.log");
        let file = File::create(&log).unwrap();
        let child = Command::new(kavro_host())
            .arg("--plugins")
            .arg(folder)
            .arg("--config")
            .arg(&config_path)
            .arg("--cache-dir")
            .arg(work.join("cache"))
            .args(["--listen", &addr.to_string(), "--admin", &admin.to_string()])
            .env("KAVRO_LOG", "info")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start kavro-host");
        let mut served = Served {
            child,
            addr,
            admin,
            log,
        };
        // A Python or JavaScript component is compiled at start: seconds,
        // more on a busy machine.
        let deadline = Instant::now() + Duration::from_secs(180);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("kavro-host exited with {status}:\n{}", served.log());
            }
            assert!(
                Instant::now() < deadline,
                "kavro-host did not start:\n{}",
                served.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// (status, `x-NAME`, body) of a GET.
    fn get(&self, path: &str, header: &str) -> (u16, Option<String>, String) {
        let r = client()
            .get(self.url(path))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()));
        let status = r.status().as_u16();
        let value = r
            .headers()
            .get(header)
            .map(|v| v.to_str().unwrap().to_string());
        (status, value, r.text().unwrap())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A site where every phase has something to do: a page holding the
/// present marker, a welcome page, 404 elsewhere. No [[plugins]] entry, so
/// the plugin's settings come from NAME.toml beside it.
fn site(name: &str) -> String {
    format!(
        "[[routes]]\nname = \"page\"\npath = \"/page\"\n\
         respond = {{ body = \"<p>a</p><!-- {name} --><p>b</p><!-- {name} -->\", headers = {{ content-type = \"text/html\" }} }}\n\n\
         [[routes]]\nname = \"welcome\"\npath = \"/\"\nrespond = {{ body = \"welcome\\n\" }}\n\n\
         [[routes]]\nname = \"rest\"\npath = \"/*\"\nrespond = {{ status = 404, body = \"not found\\n\" }}\n"
    )
}

/// Writes `demo-LANG` with every phase, builds it, serves the folder and
/// checks each phase over HTTP, then that an edited NAME.toml is read.
fn every_phase(lang: &str, build_limit: Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("demo-{lang}");
    let folder = write_plugin(tmp.path(), &name, lang, ALL);
    // Rust's build.sh keeps its target folder whatever the caller's
    // environment says.
    let elsewhere = tmp.path().join("elsewhere");
    let mut env: Vec<(&str, &Path)> = Vec::new();
    if lang == "rust" {
        env.push(("CARGO_TARGET_DIR", &elsewhere));
    }
    build(&folder, &env, build_limit);
    assert!(folder.join(format!("{name}.wasm")).is_file());
    assert!(
        !elsewhere.exists(),
        "build.sh used the caller's CARGO_TARGET_DIR"
    );

    let (ok, out) = validate(&folder);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{name} [{ALL}]")), "{out}");

    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let host = Served::start(&folder, &work, &site(&name));
    let header = format!("x-{name}");

    // prime answers /hello with the greeting from NAME.toml; package runs
    // on its reply too.
    let (status, saw, body) = host.get("/hello", &header);
    assert_eq!(status, 200, "{body}\n{}", host.log());
    assert_eq!(body, format!("hello from {name}\n"));
    assert_eq!(saw.as_deref(), Some("/hello"));
    // package names the path; the route's own answer is untouched.
    let (status, saw, body) = host.get("/", &header);
    assert_eq!((status, body.as_str()), (200, "welcome\n"));
    assert_eq!(saw.as_deref(), Some("/"));
    // prepare answers its path over the route's 404, and declines elsewhere.
    let (status, saw, body) = host.get("/hello/prepare", &header);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("prepared by {name}\n"));
    assert_eq!(saw.as_deref(), Some("/hello/prepare"));
    let (status, saw, _) = host.get("/elsewhere", &header);
    assert_eq!((status, saw.as_deref()), (404, Some("/elsewhere")));
    // present replaces each marker.
    let (status, _, body) = host.get("/page", &header);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!("<p>a</p><p>presented by {name}</p><p>b</p><p>presented by {name}</p>")
    );
    // post logs each request once it is written.
    for line in [
        format!("{name}: GET / -> 200"),
        format!("{name}: GET /elsewhere -> 404"),
    ] {
        eventually_within(Duration::from_secs(10), &line, || {
            host.log().contains(&line).then_some(())
        });
    }
    let plugins: serde_json::Value = client()
        .get(format!("http://{}/plugins", host.admin))
        .send()
        .and_then(|r| r.json())
        .expect("GET /plugins");
    let plugin = &plugins["plugins"][0];
    assert_eq!(plugin["name"], name.as_str());
    assert_eq!(
        plugin["phases"],
        serde_json::json!(["prime", "prepare", "present", "package", "post"])
    );

    // The settings file is the plugin's: an edit is picked up while serving.
    let settings = folder.join(format!("{name}.toml"));
    let edited = std::fs::read_to_string(&settings)
        .unwrap()
        .replace("greeting = \"hello\"", "greeting = \"howdy\"");
    std::fs::write(&settings, edited).unwrap();
    eventually_within(Duration::from_secs(60), "the new greeting", || {
        let (_, _, body) = host.get("/hello", &header);
        (body == format!("howdy from {name}\n")).then_some(())
    });
}

#[test]
fn rust_every_phase_builds_and_serves() {
    every_phase("rust", Duration::from_secs(900));
}

#[test]
fn python_every_phase_builds_and_serves() {
    every_phase("python", Duration::from_secs(600));
}

#[test]
fn typescript_every_phase_builds_and_serves() {
    every_phase("ts", Duration::from_secs(600));
}

#[test]
fn javascript_every_phase_builds_and_serves() {
    every_phase("js", Duration::from_secs(600));
}

#[test]
fn c_every_phase_builds_and_serves() {
    every_phase("c", Duration::from_secs(600));
}

/// A folder written with present alone, built and validated; then
/// rewritten over itself with --force for post alone, rebuilt and
/// validated again: each exports exactly its phase.
fn one_phase_at_a_time(lang: &str, build_limit: Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("solo-{lang}");
    for (i, phase) in ["present", "post"].into_iter().enumerate() {
        let folder = if i == 0 {
            write_plugin(tmp.path(), &name, lang, phase)
        } else {
            let out = plugin_new(
                tmp.path(),
                &[&name, "--lang", lang, "--phases", phase, "--force"],
            );
            assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
            tmp.path().join(&name)
        };
        build(&folder, &[], build_limit);
        let (ok, out) = validate(&folder);
        assert!(ok, "{phase}: {out}");
        assert!(out.contains(&format!("{name} [{phase}]")), "{out}");
    }
}

#[test]
fn rust_one_phase_builds() {
    one_phase_at_a_time("rust", Duration::from_secs(900));
}

#[test]
fn c_one_phase_builds() {
    one_phase_at_a_time("c", Duration::from_secs(600));
}

#[test]
fn refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let code = |out: &Output| out.status.code();

    // An empty folder of the name is fine; one with files is not.
    std::fs::create_dir(dir.join("empty")).unwrap();
    assert_eq!(code(&plugin_new(dir, &["empty", "--lang", "c"])), Some(0));

    let folder = write_plugin(dir, "taken", "c", "prime,package");
    let source = folder.join("taken.c");
    let written = std::fs::read_to_string(&source).unwrap();
    let out = plugin_new(dir, &["taken", "--lang", "c"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("{} exists", folder.display())) && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");

    // --force rewrites the template's files and leaves the others.
    std::fs::write(&source, "changed").unwrap();
    File::create(folder.join("notes.txt"))
        .unwrap()
        .write_all(b"mine")
        .unwrap();
    let out = plugin_new(dir, &["taken", "--lang", "c", "--force"]);
    assert_eq!(code(&out), Some(0), "{:?}", text(&out));
    assert_eq!(std::fs::read_to_string(&source).unwrap(), written);
    assert_eq!(
        std::fs::read_to_string(folder.join("notes.txt")).unwrap(),
        "mine"
    );

    // Bad names: exit 2, with the rule, and nothing written.
    for bad in ["Bad_Name", "9lives", "a.b", &"a".repeat(65)] {
        let out = plugin_new(dir, &[bad, "--lang", "rust"]);
        let (_, stderr) = text(&out);
        assert_eq!(code(&out), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("hint: a plugin name is lower-case"),
            "{stderr}"
        );
        assert!(!dir.join(bad).exists());
    }
    // A name the language cannot take.
    let out = plugin_new(dir, &["import", "--lang", "python"]);
    assert_eq!(code(&out), Some(2), "{:?}", text(&out));

    // Unknown phases: exit 2, naming it and the valid ones.
    let out = plugin_new(
        dir,
        &["fine", "--lang", "ts", "--phases", "prime,preflight"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(code(&out), Some(2), "{stderr}");
    assert!(stderr.contains("`preflight`"), "{stderr}");
    assert!(
        stderr.contains("prime, prepare, present, package, post"),
        "{stderr}"
    );
    assert!(!dir.join("fine").exists());

    // No SDK there: exit 2, pointing at --sdk.
    let out = Command::new(kavro_host())
        .args(["plugin", "new", "fine", "--lang", "js", "--sdk"])
        .arg(dir.join("no-sdk"))
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(code(&out), Some(2), "{stderr}");
    assert!(stderr.contains("--sdk"), "{stderr}");
    assert!(!dir.join("fine").exists());
}
