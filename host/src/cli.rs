//! Command-line interface.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kavro-host",
    version,
    about = "Kavro: a reverse proxy and web server whose extensions are sandboxed WebAssembly components",
    long_about = "Serves HTTP/1.1 and HTTP/2 (cleartext) with Pingora and runs every wasm component in the \
plugins folder through the five phases: prime, prepare, present, package, post.\n\n\
Without --config, Kavro serves its embedded default on 127.0.0.1:8080 and applies every plugin \
in the folder to every request, in file-name order.",
    after_long_help = "Environment:\n  KAVRO_LOG  what to log, as tracing's EnvFilter directives \
(default: info, Pingora's connection-pool notices off), e.g. `KAVRO_LOG=debug` or \
`KAVRO_LOG=warn,kavro::plugin=info` (plugin lines only at info). Logs go to stderr."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub common: Common,
    /// Address to serve traffic on (repeatable); overrides `server.listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Address of the admin API (/status, /plugins, /metrics); overrides `admin.listen`.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Worker threads (0: one per core); overrides `server.threads`.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Let idle worker threads steal work from busy ones (true/false); overrides `server.work_stealing`.
    #[arg(long, value_name = "BOOL")]
    pub work_stealing: Option<bool>,
    /// Take over the listening sockets of the kavro-host running now
    /// instead of binding them: start this one with --upgrade, then send
    /// the running one SIGQUIT; it hands its sockets over and drains.
    #[arg(long)]
    pub upgrade: bool,
    /// The Unix socket the listening sockets are handed over on; the same
    /// for the old process and the new, in a folder only Kavro's user can
    /// write.
    #[arg(long, value_name = "PATH", default_value = "/tmp/kavro-upgrade.sock")]
    pub upgrade_socket: PathBuf,
}

/// Where the config and the plugins come from: taken before or after `validate`.
#[derive(Debug, Args, Default, Clone)]
pub struct Common {
    /// Folder whose *.wasm components are loaded as plugins [default: ./plugins].
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Config file: TOML, or JSON (`.json`, the same keys); without it the
    /// embedded default is used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

impl Common {
    /// The folder named, else `./plugins`.
    pub fn plugins_dir(&self) -> &Path {
        self.plugins.as_deref().unwrap_or(Path::new("./plugins"))
    }

    /// What this one names, else what `outer` (the flags before the subcommand) names.
    pub fn or(self, outer: &Common) -> Common {
        Common {
            plugins: self.plugins.or_else(|| outer.plugins.clone()),
            config: self.config.or_else(|| outer.config.clone()),
            cache: self.cache.or(&outer.cache),
        }
    }
}

/// The compiled-plugin cache.
#[derive(Debug, Args, Default, Clone)]
pub struct CacheArgs {
    /// Where compiled plugins are cached [default: $KAVRO_CACHE_DIR, $XDG_CACHE_HOME/kavro or ~/.cache/kavro].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-plugin cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl CacheArgs {
    /// What this one names, else what `outer` names.
    pub fn or(self, outer: &CacheArgs) -> CacheArgs {
        CacheArgs {
            cache_dir: self.cache_dir.or_else(|| outer.cache_dir.clone()),
            no_cache: self.no_cache || outer.no_cache,
        }
    }

    /// The cache folder to use, or `None` with `--no-cache`.
    pub fn dir(&self) -> Option<PathBuf> {
        (!self.no_cache).then(|| {
            self.cache_dir
                .clone()
                .unwrap_or_else(crate::plugin::artifacts::default_dir)
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config and the plugins folder without serving; exits non-zero on errors.
    Validate(ValidateArgs),
    /// Print a config (TOML or JSON) as its canonical JSON graph: keys
    /// sorted, defaults written out, relative paths resolved.
    Compile(CompileArgs),
    /// Write a new plugin, or try one on a request without a server.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub common: Common,
    /// The config to check (the same as --config).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The config to compile [default: --config, else the embedded default].
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Write a ready-to-build plugin folder NAME/ from the SDK's templates.
    New(NewArgs),
    /// Run one request through a plugin's phases and print what each did.
    Try(TryArgs),
}

/// The languages `plugin new` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    /// TypeScript, built by the JS SDK.
    #[value(alias = "typescript")]
    Ts,
    /// Plain JavaScript, built by the JS SDK.
    #[value(alias = "javascript")]
    Js,
    C,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lower-case letters, digits and `-`; also its folder and NAME.wasm.
    pub name: String,
    /// The language of the source.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// The phases to export, comma-separated.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "prime,package"
    )]
    pub phases: Vec<String>,
    /// The folder to create NAME/ in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Write into NAME/ even if it exists, replacing the files the template has.
    #[arg(long)]
    pub force: bool,
    /// This checkout's sdk/ folder [default: $KAVRO_SDK, else the sdk/ of the checkout kavro-host was built from].
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TryArgs {
    /// The plugin component; its settings are read from NAME.toml beside it, if there.
    pub plugin: PathBuf,
    /// The request's method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// The request's path and query.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// A request header, `name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The request body (prepare sees its length only).
    #[arg(long)]
    pub body: Option<String>,
    /// The status of the response the route gives when no plugin answers.
    #[arg(long, default_value_t = 200)]
    pub status: u16,
    /// The body of that response, which present sees.
    #[arg(
        long,
        value_name = "BODY",
        default_value = "<!doctype html><p>hello</p>\n"
    )]
    pub response_body: String,
    /// Its content type.
    #[arg(long, value_name = "TYPE", default_value = "text/html; charset=utf-8")]
    pub content_type: String,
    /// A value of the plugin's config, `key=value` (repeatable); over NAME.toml's.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub values: Vec<String>,
    /// Run only these phases (comma-separated); the plugin must export each.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub phases: Vec<String>,
    #[command(flatten)]
    pub cache: CacheArgs,
}
