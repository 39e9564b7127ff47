//! WASI environment variables: granted one by one with `env = ["VAR", ...]`
//! in a plugin's settings, with the values kavro-host had when the config
//! was read. A plugin sees no others.

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;

use super::{Granting, HostView, Unit};
use crate::config::{Config, PluginSettings};

pub struct Env;

impl Unit for Env {
    const NAME: &'static str = "env";
    const LISTED: bool = false;
    type Shared = ();
    /// The granted variables and their values.
    type View = Arc<[(String, String)]>;

    fn shared(_: &Config) {}

    fn granted(settings: &PluginSettings) -> bool {
        !settings.env.is_empty()
    }

    fn how_to_grant() -> String {
        "env = [\"VAR\", ...]".into()
    }

    fn view(plugin: &Granting<'_>, _: &()) -> Self::View {
        plugin.settings.env.clone().into()
    }

    /// Linked with the rest of WASI.
    fn add_to_linker<T: HostView>(_: &mut Linker<T>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn wasi(vars: &Self::View, wasi: &mut WasiCtxBuilder) -> anyhow::Result<()> {
        for (k, v) in vars.iter() {
            wasi.env(k, v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::view;
    use super::*;

    #[test]
    fn only_the_variables_granted() {
        assert!(!Env::granted(&PluginSettings::default()));
        assert!(view::<Env>(&PluginSettings::default()).is_empty());
        let settings = PluginSettings {
            env: vec![("REGION".into(), "eu".into())],
            ..Default::default()
        };
        assert!(Env::granted(&settings));
        assert_eq!(&*view::<Env>(&settings), [("REGION".into(), "eu".into())]);
    }
}
