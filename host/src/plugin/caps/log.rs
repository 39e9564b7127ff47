//! `kavro:plugin/log`: always granted; goes to the host's tracing output
//! tagged with the plugin name and request id.

use crate::plugin::bindings::kavro::plugin::log::Host;
use crate::plugin::bindings::types::Level;
use crate::plugin::state::HostState;

/// Longest message kept; the rest is cut so a plugin cannot flood the log.
const MAX_MESSAGE: usize = 16 * 1024;

impl Host for HostState {
    fn log(&mut self, level: Level, mut message: String) {
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let plugin = self.grants.plugin.as_str();
        let request = self.info.as_ref().map_or("", |i| i.id.as_str());
        match level {
            Level::Trace => tracing::trace!(target: "kavro::plugin", plugin, request, "{message}"),
            Level::Debug => tracing::debug!(target: "kavro::plugin", plugin, request, "{message}"),
            Level::Info => tracing::info!(target: "kavro::plugin", plugin, request, "{message}"),
            Level::Warn => tracing::warn!(target: "kavro::plugin", plugin, request, "{message}"),
            Level::Error => tracing::error!(target: "kavro::plugin", plugin, request, "{message}"),
        }
    }
}
