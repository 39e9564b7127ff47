//! `kavro:plugin/metrics`: counters and histograms a plugin records,
//! exported on the admin `/metrics` labelled with the plugin's name.
//!
//! Each distinct name is a series that `/metrics` keeps for good; a plugin
//! that names metrics after request data would grow it without bound, so
//! each plugin may create `limits.max_metric_series`, and a new name past
//! them is refused with an error the plugin sees.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

use wasmtime::component::Linker;

use super::{denied, view_of, CapCtx, Granting, HasView, HostView, Unit};
use crate::config::Config;
use crate::plugin::bindings::kavro::plugin::metrics::{self as wit, Host};
use crate::plugin::bindings::types::HostError;

pub struct Metrics;

impl Unit for Metrics {
    const NAME: &'static str = "metrics";
    type Shared = ();
    /// Granted, with the plugin's series limit.
    type View = Option<usize>;

    fn shared(_: &Config) {}

    fn view(g: &Granting<'_>, _: &()) -> Option<usize> {
        Some(g.settings.limits.max_metric_series)
    }

    fn add_to_linker<T: HostView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasView<Metrics>>(linker, view_of::<T, Metrics>)
    }
}

static COUNTERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = IntCounterVec::new(
        Opts::new("kavro_plugin_counter_total", "Counters recorded by plugins"),
        &["plugin", "name"],
    )
    .expect("valid metric");
    let _ = prometheus::default_registry().register(Box::new(c.clone()));
    c
});

static HISTOGRAMS: LazyLock<HistogramVec> = LazyLock::new(|| {
    let h = HistogramVec::new(
        HistogramOpts::new("kavro_plugin_histogram", "Histograms recorded by plugins"),
        &["plugin", "name"],
    )
    .expect("valid metric");
    let _ = prometheus::default_registry().register(Box::new(h.clone()));
    h
});

fn check_name(name: &str) -> Result<(), HostError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(HostError::Invalid(format!(
            "metric name `{name}` must be 1-64 characters of a-z, 0-9 and _"
        )))
    }
}

/// A series: whether it is a histogram, and its name.
type Series = (bool, String);

/// The series each plugin has created.
static SERIES: LazyLock<Mutex<HashMap<String, HashSet<Series>>>> = LazyLock::new(Mutex::default);

/// Admits a series `(histogram, name)` of `plugin`: known, or new within `max`.
fn admit_series(plugin: &str, histogram: bool, name: &str, max: usize) -> Result<(), HostError> {
    let mut all = SERIES.lock().unwrap_or_else(|e| e.into_inner());
    let mine = all.entry(plugin.to_string()).or_default();
    let key = (histogram, name.to_string());
    if mine.contains(&key) {
        return Ok(());
    }
    if mine.len() >= max {
        return Err(HostError::Unavailable(format!(
            "metric `{name}` would be series {} of this plugin, over its limits.max_metric_series ({max}); name metrics after what they count, not after request data",
            mine.len() + 1
        )));
    }
    mine.insert(key);
    Ok(())
}

impl CapCtx<'_, Option<usize>> {
    /// The series limit, if granted.
    fn metrics_granted(&self) -> Result<usize, HostError> {
        self.view.ok_or_else(|| denied::<Metrics>(self.call))
    }
}

impl Host for CapCtx<'_, Option<usize>> {
    fn counter_add(&mut self, name: String, value: u64) -> Result<(), HostError> {
        let max = self.metrics_granted()?;
        check_name(&name)?;
        admit_series(&self.call.plugin, false, &name, max)?;
        COUNTERS
            .with_label_values(&[&*self.call.plugin, name.as_str()])
            .inc_by(value);
        Ok(())
    }

    fn histogram_observe(&mut self, name: String, value: f64) -> Result<(), HostError> {
        let max = self.metrics_granted()?;
        check_name(&name)?;
        admit_series(&self.call.plugin, true, &name, max)?;
        HISTOGRAMS
            .with_label_values(&[&*self.call.plugin, name.as_str()])
            .observe(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{call, granting, is_denied, view};
    use super::super::Capability;
    use super::*;

    #[test]
    fn denied_unless_granted_and_names_checked() {
        let mut call = call();
        let mut no = view::<Metrics>(&granting(&[]));
        let mut ctx = CapCtx {
            view: &mut no,
            call: &mut call,
        };
        assert!(is_denied(ctx.counter_add("hits".into(), 1)));
        let mut yes = view::<Metrics>(&granting(&[Capability::Metrics]));
        let mut ctx = CapCtx {
            view: &mut yes,
            call: &mut call,
        };
        assert!(ctx.counter_add("hits".into(), 1).is_ok());
        assert!(ctx.histogram_observe("latency_ms".into(), 1.5).is_ok());
        assert!(matches!(
            ctx.counter_add("Bad-Name".into(), 1),
            Err(HostError::Invalid(_))
        ));
        assert!(ctx.counter_add("x".repeat(65), 1).is_err());
    }

    #[test]
    fn a_plugin_creates_at_most_its_series() {
        let mut call = call();
        call.plugin = "series-limited".into();
        let mut two = Some(2);
        let mut ctx = CapCtx {
            view: &mut two,
            call: &mut call,
        };
        assert!(ctx.counter_add("a".into(), 1).is_ok());
        assert!(ctx.histogram_observe("a".into(), 1.0).is_ok());
        // Known series go on being recorded; a third is refused, and says why.
        assert!(ctx.counter_add("a".into(), 1).is_ok());
        let refused = ctx.counter_add("b".into(), 1).unwrap_err();
        assert!(
            matches!(&refused, HostError::Unavailable(m) if m.contains("max_metric_series")),
            "{refused:?}"
        );
    }
}
