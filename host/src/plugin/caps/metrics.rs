//! `kavro:plugin/metrics`: counters and histograms a plugin records,
//! exported on the admin `/metrics` labelled with the plugin's name.

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

use super::denied;
use crate::plugin::bindings::kavro::plugin::metrics::Host;
use crate::plugin::bindings::types::HostError;
use crate::plugin::state::HostState;

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

impl HostState {
    fn metrics_granted(&self) -> Result<(), HostError> {
        if self.grants.metrics {
            Ok(())
        } else {
            Err(denied(&self.grants.plugin, "metrics"))
        }
    }
}

impl Host for HostState {
    fn counter_add(&mut self, name: String, value: u64) -> Result<(), HostError> {
        self.metrics_granted()?;
        check_name(&name)?;
        COUNTERS
            .with_label_values(&[self.grants.plugin.as_str(), name.as_str()])
            .inc_by(value);
        Ok(())
    }

    fn histogram_observe(&mut self, name: String, value: f64) -> Result<(), HostError> {
        self.metrics_granted()?;
        check_name(&name)?;
        HISTOGRAMS
            .with_label_values(&[self.grants.plugin.as_str(), name.as_str()])
            .observe(value);
        Ok(())
    }
}
