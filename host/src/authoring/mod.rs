//! For plugin authors: `plugin new` writes a plugin folder from the SDK's
//! templates, and `plugin try` runs one request through a plugin without a
//! server.

pub mod new;
pub mod tryout;

use crate::cli::{Cli, PluginCommand};

/// Runs a `plugin` subcommand; returns the process's exit code. Of the
/// flags before `plugin`, the cache's apply to `try`; the server's are refused.
pub fn main(command: PluginCommand, outer: &Cli) -> i32 {
    let server_flags = [
        ("--listen", !outer.listen.is_empty()),
        ("--admin", outer.admin.is_some()),
        ("--threads", outer.threads.is_some()),
        ("--work-stealing", outer.work_stealing.is_some()),
        ("--plugins", outer.common.plugins.is_some()),
        ("--config", outer.common.config.is_some()),
    ];
    if let Some((flag, _)) = server_flags.iter().find(|(_, given)| *given) {
        eprintln!(
            "error: {flag} is a flag of the server, not of `plugin`\n  hint: `kavro-host plugin try --help` lists what a try takes"
        );
        return 2;
    }
    match command {
        PluginCommand::New(args) => new::run(&args),
        PluginCommand::Try(mut args) => {
            args.cache = args.cache.or(&outer.common.cache);
            tryout::run(&args)
        }
    }
}
