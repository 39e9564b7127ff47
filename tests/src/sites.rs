//! One site with each kind of route, for tests that put a plugin on all
//! of them: a proxied route to a real upstream, a static file, a FastCGI
//! route to a real php-fpm, and a respond route.

use std::time::Duration;

use crate::php::PhpFpm;
use crate::upstream::Upstream;
use crate::Host;

/// The four kinds of route, and a request path for each.
pub const PATHS: [&str; 4] = ["/proxy/echo", "/hello.txt", "/index.php", "/respond"];

/// A proxied, a static, a FastCGI and a respond route, and what serves them.
pub struct Site {
    pub upstream: Upstream,
    pub fpm: PhpFpm,
    pub root: tempfile::TempDir,
}

impl Site {
    pub fn start() -> Site {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("hello.txt"), "hello from a file\n").unwrap();
        Site {
            upstream: Upstream::start("app"),
            fpm: PhpFpm::start(4),
            root,
        }
    }

    /// The routes, and plugin `only` (a `[[plugins]]` entry with
    /// `plugin_settings`), which applies to all of them.
    pub fn config(&self, plugin_settings: &str) -> String {
        format!(
            "[upstreams.app]\ntargets = [\"{upstream}\"]\n\n\
             [[routes]]\nname = \"proxied\"\npath = \"/proxy/*\"\nproxy = \"app\"\n\n\
             [[routes]]\nname = \"respond\"\npath = \"/respond\"\nrespond = {{ body = \"hello from respond\" }}\n\n\
             [[routes]]\nname = \"php\"\npath = \"/*.php\"\n\
             [routes.fastcgi]\naddress = \"{fpm}\"\nroot = \"{php_root}\"\n\n\
             [[routes]]\nname = \"files\"\npath = \"/*\"\nstatic = {{ root = \"{root}\" }}\n\n\
             [[plugins]]\nname = \"only\"\n{plugin_settings}\n",
            upstream = self.upstream.addr,
            fpm = self.fpm.address(),
            php_root = self.fpm.root().display(),
            root = self.root.path().display(),
        )
    }

    pub fn host(&self, phase: &str, plugin_settings: &str) -> Host {
        Host::builder()
            .plugin(&format!("only-{phase}"), "only")
            .config(&self.config(plugin_settings))
            .start()
    }
}

/// A client per connection; a hang fails the test in seconds, not minutes.
pub fn connection() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(1)
        .build()
        .unwrap()
}
