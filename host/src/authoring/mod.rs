//! For plugin authors: `plugin new` writes a plugin folder from the SDK's
//! templates, and `plugin try` runs one request through a plugin without a
//! server.

pub mod new;
pub mod tryout;

use crate::cli::PluginCommand;

/// Runs a `plugin` subcommand; returns the process's exit code.
pub fn main(command: PluginCommand) -> i32 {
    match command {
        PluginCommand::New(args) => new::run(&args),
        PluginCommand::Try(args) => tryout::run(&args),
    }
}
