//! `kavro:plugin/metrics`: counters and histograms a plugin records,
//! exported on the admin `/metrics` labelled with the plugin's name.

use std::sync::LazyLock;

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
    /// Granted.
    type View = bool;

    fn shared(_: &Config) {}

    fn view(_: &Granting<'_>, _: &()) -> bool {
        true
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

impl CapCtx<'_, bool> {
    fn metrics_granted(&self) -> Result<(), HostError> {
        if *self.view {
            Ok(())
        } else {
            Err(denied::<Metrics>(self.call))
        }
    }
}

impl Host for CapCtx<'_, bool> {
    fn counter_add(&mut self, name: String, value: u64) -> Result<(), HostError> {
        self.metrics_granted()?;
        check_name(&name)?;
        COUNTERS
            .with_label_values(&[&*self.call.plugin, name.as_str()])
            .inc_by(value);
        Ok(())
    }

    fn histogram_observe(&mut self, name: String, value: f64) -> Result<(), HostError> {
        self.metrics_granted()?;
        check_name(&name)?;
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
}
