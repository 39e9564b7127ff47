//! Precompiled components cached on disk, keyed by the content hash of the
//! `.wasm` and the engine's compatibility hash. Compiling a large (Python or
//! JS) component takes seconds; loading its artifact takes milliseconds.
//!
//! A hot swap of a large component that has no artifact yet does not wait
//! for the optimizing compile: the baseline engine compiles it about four
//! times faster and it serves on that code, while a background thread
//! compiles it optimized, stores the artifact and asks for a reload, which
//! swaps the optimized code in like any other change.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use super::engine::Runtime;

/// Components at least this large take the baseline path on a hot swap:
/// their optimizing compile takes seconds (a Python or JS plugin is 10 MB
/// and more); a Rust or C plugin compiles optimized in milliseconds.
const BASELINE_MIN_BYTES: usize = 2 << 20;

/// Called once a component's optimized artifact is stored (the reloader
/// reloads, and the new set loads that artifact).
static ON_OPTIMIZED: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

/// Content hashes being compiled optimized in the background.
static OPTIMIZING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Sets what to do when a background optimizing compile has finished.
pub fn on_optimized(f: impl Fn() + Send + Sync + 'static) {
    let _ = ON_OPTIMIZED.set(Box::new(f));
}

/// How a component is wanted: at a start the host waits for optimized
/// code; on a hot swap a large component may first serve baseline code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Start,
    Swap,
}

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
    runtime: &Runtime,
    dir: Option<&Path>,
    bytes: &[u8],
    hash: &str,
    urgency: Urgency,
) -> anyhow::Result<Component> {
    let engine = &runtime.engine;
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
    let quick = urgency == Urgency::Swap && bytes.len() >= BASELINE_MIN_BYTES;
    if let (true, Some(baseline), Some(_)) = (quick, runtime.baseline(), ON_OPTIMIZED.get()) {
        // What the baseline compiler refuses, the optimizing one judges.
        if let Ok(component) = compile(baseline, bytes) {
            optimize_in_background(engine.clone(), bytes.to_vec(), hash.to_string(), path);
            return Ok(component);
        }
    }
    let component = compile(engine, bytes)?;
    if let Err(e) = store(&path, &component) {
        tracing::warn!(path = %path.display(), "cannot cache the compiled plugin: {e:#}");
    }
    Ok(component)
}

/// Compiles `bytes` optimized on a thread of its own, stores the artifact
/// at `path` and calls the [`on_optimized`] hook; once per content hash at
/// a time.
fn optimize_in_background(engine: Engine, bytes: Vec<u8>, hash: String, path: PathBuf) {
    if !OPTIMIZING
        .lock()
        .expect("not poisoned")
        .insert(hash.clone())
    {
        return;
    }
    // A thread, not a task: the compile takes seconds of CPU, and
    // `compile` moves its thread to SCHED_IDLE for good, which must never
    // be a runtime's worker.
    let spawned = std::thread::Builder::new()
        .name("kavro-optimize".into())
        .spawn(move || {
            let stored = compile(&engine, &bytes).and_then(|c| store(&path, &c));
            OPTIMIZING.lock().expect("not poisoned").remove(&hash);
            match stored {
                Ok(()) => {
                    tracing::info!(hash = %hash, "optimized code is ready: reloading to use it");
                    if let Some(f) = ON_OPTIMIZED.get() {
                        f();
                    }
                }
                // Valid for the baseline engine, so this is unexpected; the
                // baseline code keeps serving.
                Err(e) => tracing::warn!(hash = %hash, "optimizing compile failed: {e:#}"),
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the optimizing compile: {e}");
    }
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
