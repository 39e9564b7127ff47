//! A real php-fpm on a unix socket in a temp dir, serving a copy of
//! `tests/php/app`, for the FastCGI and cache tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PhpFpm {
    child: Child,
    pub dir: tempfile::TempDir,
    /// `Some(port)` when listening on loopback TCP instead of the socket.
    port: Option<u16>,
}

/// php-fpm from Debian's package (in /usr/sbin, which may not be on PATH).
fn binary() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PHP_FPM")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin"] {
        for name in ["php-fpm", "php-fpm8.2", "php-fpm8.3", "php-fpm8.4"] {
            candidates.push(Path::new(dir).join(name));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.exists())
        .expect("php-fpm is not installed: run ./dev.sh test, which installs it")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl PhpFpm {
    /// Starts php-fpm with `children` static workers on a unix socket.
    pub fn start(children: usize) -> PhpFpm {
        PhpFpm::launch(children, None)
    }

    /// The same on a loopback TCP port.
    pub fn start_tcp(children: usize) -> PhpFpm {
        PhpFpm::launch(children, Some(crate::free_port()))
    }

    fn launch(children: usize, port: Option<u16>) -> PhpFpm {
        let dir = tempfile::tempdir().expect("temp dir");
        let app = crate::crate_dir().join("php/app");
        copy_dir(&app, &dir.path().join("app"));
        let root = is_root();
        let conf = format!(
            "[global]\n\
             error_log = {log}\n\
             daemonize = no\n\
             [app]\n\
             {user}\
             listen = {sock}\n\
             listen.mode = 0666\n\
             pm = static\n\
             pm.max_children = {children}\n\
             catch_workers_output = yes\n\
             php_admin_value[upload_max_filesize] = 8M\n\
             php_admin_value[post_max_size] = 16M\n",
            log = dir.path().join("fpm.log").display(),
            sock = match port {
                Some(p) => format!("127.0.0.1:{p}"),
                None => dir.path().join("fpm.sock").display().to_string(),
            },
            user = if root {
                "user = root\ngroup = root\n"
            } else {
                ""
            },
        );
        let conf_path = dir.path().join("fpm.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("--nodaemonize")
            .arg("--fpm-config")
            .arg(&conf_path)
            .arg("-n") // no php.ini: the same behaviour on every machine
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if root {
            cmd.arg("--allow-to-run-as-root");
        }
        let child = cmd.spawn().expect("start php-fpm");
        let mut fpm = PhpFpm { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        let up = |f: &PhpFpm| match f.port {
            Some(p) => std::net::TcpStream::connect(("127.0.0.1", p)).is_ok(),
            None => std::os::unix::net::UnixStream::connect(f.socket()).is_ok(),
        };
        while !up(&fpm) {
            if let Ok(Some(status)) = fpm.child.try_wait() {
                panic!("php-fpm exited with {status}:\n{}", fpm.log());
            }
            assert!(
                Instant::now() < deadline,
                "php-fpm did not start:\n{}",
                fpm.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        fpm
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("fpm.sock")
    }

    /// What a `fastcgi.address` in the host's config says.
    pub fn address(&self) -> String {
        match self.port {
            Some(p) => format!("127.0.0.1:{p}"),
            None => format!("unix:{}", self.socket().display()),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("app")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fpm.log")).unwrap_or_default()
    }

    /// How many times `counter.php` ran.
    pub fn hits(&self) -> usize {
        std::fs::read_to_string(self.root().join(".hits"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Stops php-fpm and its workers (to test a host whose FastCGI server
    /// is down): SIGTERM makes the master end its workers first.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        self.stop();
    }
}
