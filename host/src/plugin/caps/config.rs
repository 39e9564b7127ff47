//! `kavro:plugin/config`: the plugin's own values from the host config;
//! every plugin may read its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::Linker;

use super::{view_of, CapCtx, Granting, HasView, HostView, Unit};
use crate::plugin::bindings::kavro::plugin::config::{self as wit, Host};

pub struct Config;

impl Unit for Config {
    const NAME: &'static str = "config";
    const ALWAYS: bool = true;
    type Shared = ();
    /// The plugin's values.
    type View = Arc<BTreeMap<String, String>>;

    fn shared(_: &crate::config::Config) {}

    fn view(plugin: &Granting<'_>, _: &()) -> Self::View {
        Arc::new(plugin.settings.values.clone())
    }

    fn add_to_linker<T: HostView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasView<Config>>(linker, view_of::<T, Config>)
    }
}

impl Host for CapCtx<'_, Arc<BTreeMap<String, String>>> {
    fn get(&mut self, key: String) -> Option<String> {
        self.view.get(&key).cloned()
    }

    fn entries(&mut self) -> Vec<(String, String)> {
        self.view
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{call, view};
    use super::*;

    #[test]
    fn a_plugin_reads_its_own_values() {
        let mut settings = crate::config::PluginSettings::default();
        settings.values.insert("greeting".into(), "hi".into());
        let mut values = view::<Config>(&settings);
        let mut call = call();
        let mut ctx = CapCtx {
            view: &mut values,
            call: &mut call,
        };
        assert_eq!(ctx.get("greeting".into()).as_deref(), Some("hi"));
        assert_eq!(ctx.get("other".into()), None);
        assert_eq!(ctx.entries().len(), 1);
    }
}
