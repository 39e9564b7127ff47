//! WASI files: read-only directories granted with
//! `dirs = { "/guest" = "./host" }` in a plugin's settings. A plugin sees
//! no other part of the file system.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use wasmtime::component::Linker;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::{Granting, HostView, Unit};
use crate::config::{Config, PluginSettings};

pub struct Fs;

impl Unit for Fs {
    const NAME: &'static str = "fs";
    const LISTED: bool = false;
    type Shared = ();
    /// The granted directories: (host path, guest path).
    type View = Arc<[(PathBuf, String)]>;

    fn shared(_: &Config) {}

    fn granted(settings: &PluginSettings) -> bool {
        !settings.dirs.is_empty()
    }

    fn how_to_grant() -> String {
        "dirs = { \"/guest\" = \"./host\" }".into()
    }

    fn view(plugin: &Granting<'_>, _: &()) -> Self::View {
        plugin.settings.dirs.clone().into()
    }

    /// Linked with the rest of WASI.
    fn add_to_linker<T: HostView>(_: &mut Linker<T>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn wasi(dirs: &Self::View, wasi: &mut WasiCtxBuilder) -> anyhow::Result<()> {
        for (host, guest) in dirs.iter() {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot open {} for the plugin", host.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::view;
    use super::*;

    #[test]
    fn only_the_directories_granted_and_they_must_open() {
        assert!(!Fs::granted(&PluginSettings::default()));
        assert!(view::<Fs>(&PluginSettings::default()).is_empty());
        let dir = std::env::temp_dir();
        let settings = PluginSettings {
            dirs: vec![(dir.clone(), "/data".into())],
            ..Default::default()
        };
        assert!(Fs::granted(&settings));
        let granted = view::<Fs>(&settings);
        assert_eq!(&*granted, [(dir, "/data".to_string())]);
        let mut wasi = wasmtime_wasi::WasiCtx::builder();
        assert!(Fs::wasi(&granted, &mut wasi).is_ok());
        let gone: Arc<[(PathBuf, String)]> = vec![("/surely/not/here".into(), "/x".into())].into();
        let e = Fs::wasi(&gone, &mut wasmtime_wasi::WasiCtx::builder()).unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot open /surely/not/here"),
            "{e:#}"
        );
    }
}
