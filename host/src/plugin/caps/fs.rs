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
