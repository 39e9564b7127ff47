//! `kavro:plugin/log`: always granted; goes to the host's tracing output
//! tagged with the plugin name and request id.

use std::borrow::Cow;
use std::fmt::Write;

use wasmtime::component::Linker;

use super::{view_of, CapCtx, Granting, HasView, HostView, Unit};
use crate::config::Config;
use crate::plugin::bindings::kavro::plugin::log::{self as wit, Host};
use crate::plugin::bindings::types::Level;

/// Longest message kept; the rest is cut so a plugin cannot flood the log.
const MAX_MESSAGE: usize = 16 * 1024;

/// The target of plugin log lines. The log layer that writes them leaves
/// escaping to [`escape_controls`], which passes a clean line through in
/// one scan instead of a character at a time.
pub const TARGET: &str = "kavro::plugin";

pub struct Log;

impl Unit for Log {
    const NAME: &'static str = "log";
    const ALWAYS: bool = true;
    type Shared = ();
    type View = ();

    fn shared(_: &Config) {}

    fn view(_: &Granting<'_>, _: &()) {}

    fn add_to_linker<T: HostView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasView<Log>>(linker, view_of::<T, Log>)
    }
}

/// Cuts a message to [`MAX_MESSAGE`] bytes, on a character boundary.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    message
}

impl Host for CapCtx<'_, ()> {
    /// Kept with the call: the host shows it with the failure it ends in.
    /// In a post batch, kept by request: the host counts the failure once
    /// for that completion, and knows how far the batch got if it traps.
    fn fail(&mut self, seq: u64, message: String) {
        if self.call.batch.is_empty() {
            self.call.reported = Some(bounded(message));
        } else {
            self.call.report_in_batch(seq, bounded(message));
        }
    }

    fn log(&mut self, level: Level, message: String) {
        let message = bounded(message);
        let message = escape_controls(&message);
        let plugin = &*self.call.plugin;
        let request = self.call.request_id();
        match level {
            Level::Trace => tracing::trace!(target: TARGET, plugin, request, "{message}"),
            Level::Debug => tracing::debug!(target: TARGET, plugin, request, "{message}"),
            Level::Info => tracing::info!(target: TARGET, plugin, request, "{message}"),
            Level::Warn => tracing::warn!(target: TARGET, plugin, request, "{message}"),
            Level::Error => tracing::error!(target: TARGET, plugin, request, "{message}"),
        }
    }
}

/// A plugin's message with control characters written as escapes: no
/// terminal escape sequences, and no line breaks that would forge a log
/// line of their own. Tabs stay.
pub fn escape_controls(message: &str) -> Cow<'_, str> {
    let is_control = |c: char| c.is_control() && c != '\t';
    // C0, DEL and C1 (U+0080..U+009F, 0xC2 0x80..0x9F in UTF-8): all start
    // with a byte below 0x20, 0x7F or 0xC2.
    let suspect = |b: &u8| *b < 0x20 || *b == 0x7f || *b == 0xc2;
    if !message.as_bytes().iter().any(suspect) || !message.chars().any(is_control) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len() + 16);
    for c in message.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_controls("{\"a\":\"é\tb\"}"), "{\"a\":\"é\tb\"}");
        assert_eq!(
            escape_controls("red \x1b[31m\nforged line\r\u{9b}"),
            "red \\u{1b}[31m\\nforged line\\r\\u{9b}"
        );
    }
}
