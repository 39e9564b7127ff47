//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
}

#[derive(Debug, Args)]
pub struct Common {
    /// Folder whose *.wasm components are loaded as plugins.
    #[arg(long, value_name = "DIR", default_value = "./plugins", global = true)]
    pub plugins: PathBuf,
    /// Config file (TOML); without it the embedded default is used.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Where compiled plugins are cached [default: $KAVRO_CACHE_DIR, $XDG_CACHE_HOME/kavro or ~/.cache/kavro].
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the compiled-plugin cache.
    #[arg(long, global = true)]
    pub no_cache: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config and the plugins folder without serving; exits non-zero on errors.
    Validate,
}
