//! Precompiled components cached on disk, keyed by the content hash of the
//! `.wasm` and the engine's compatibility hash. Compiling a large (Python or
//! JS) component takes seconds; loading its artifact takes milliseconds.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The default cache folder: `$KAVRO_CACHE_DIR`, else `$XDG_CACHE_HOME/kavro`,
/// else `~/.cache/kavro`, else a folder under the system temp dir.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KAVRO_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("kavro");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("kavro");
    }
    std::env::temp_dir().join("kavro-cache")
}

fn engine_key(engine: &Engine) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Loads the component for `bytes`, from `dir` when it was compiled before.
/// A cache that cannot be read or written only costs a compile. Runs on a
/// loader thread of its own: a compile lowers that thread to the
/// background (loading an artifact takes milliseconds and keeps its pace).
pub fn load(
    engine: &Engine,
    dir: Option<&Path>,
    bytes: &[u8],
    hash: &str,
) -> anyhow::Result<Component> {
    let Some(dir) = dir else {
        return compile(engine, bytes);
    };
    let path = dir.join(format!("{hash}-{}.cwasm", engine_key(engine)));
    if path.exists() {
        // SAFETY: the artifact was written by `Component::serialize` of this
        // engine configuration (the file name carries its compatibility hash)
        // into a folder owned by the operator.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok(c),
            Err(e) => tracing::warn!(path = %path.display(), "ignoring a bad artifact: {e:#}"),
        }
    }
    let component = compile(engine, bytes)?;
    if let Err(e) = store(&path, &component) {
        tracing::warn!(path = %path.display(), "cannot cache the compiled plugin: {e:#}");
    }
    Ok(component)
}

fn compile(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Component> {
    super::slow_lane::background_priority();
    Ok(Component::new(engine, bytes)?)
}

fn store(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().expect("artifact has a folder");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
