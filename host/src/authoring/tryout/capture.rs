//! What a plugin logs during `plugin try`: its log lines are kept for the
//! report of the phase that wrote them; the host's own warnings go to stderr.

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::plugin::caps::log::TARGET;

/// The plugin's log lines since they were last taken.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Capture(Lines);

/// The message of an event, without its other fields.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        let level = event.metadata().level();
        if event.metadata().target() == TARGET {
            let line = format!("{:<5} {}", level.as_str().to_ascii_lowercase(), message.0);
            self.0
                 .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line);
        } else {
            eprintln!("{level}: {}", message.0);
        }
    }
}

/// Routes this process's tracing into the returned lines (plugin log
/// lines, every level) and stderr (the host's warnings and errors).
pub fn install() -> Lines {
    let lines = Lines::default();
    let layer = Capture(lines.clone()).with_filter(filter_fn(|m| {
        m.target() == TARGET || *m.level() <= Level::WARN
    }));
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
    lines
}
