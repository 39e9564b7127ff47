//! `kavro-c`: builds a Kavro plugin written in C into a wasm component.
//!
//!   kavro-c build plugin.c [more.c ...] -o plugin.wasm
//!
//! It finds the phases the sources define (`kavro_prime`, `kavro_prepare`,
//! `kavro_present`, `kavro_package`, `kavro_post`), writes a WIT world that
//! exports exactly those, generates its C bindings (wit-bindgen), compiles
//! everything with clang for wasm32-wasi as a reactor, and wraps the module
//! into a component with the WASI preview1 reactor adapter.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use wit_bindgen_core::wit_parser::Resolve;

const PHASES: [&str; 5] = ["prime", "prepare", "present", "package", "post"];

/// The repository's sdk/c folder (kavro.h, kavro.c; wit/ is two levels up):
/// where the `kavro-c` script says it is, else where this tool was built
/// (a target dir shared between clones may hold a build from another one).
fn sdk_dir() -> PathBuf {
    std::env::var_os("KAVRO_C_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("sdk/c")
                .to_path_buf()
        })
}

fn phases_in(sources: &[PathBuf]) -> Result<Vec<&'static str>> {
    let mut text = String::new();
    for s in sources {
        text += &std::fs::read_to_string(s).with_context(|| format!("reading {}", s.display()))?;
    }
    let defines = |phase: &str| {
        let name = format!("kavro_{phase}");
        text.match_indices(&name).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + name.len()..].trim_start();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && after.starts_with('(')
        })
    };
    let found: Vec<&str> = PHASES.iter().copied().filter(|p| defines(p)).collect();
    if found.is_empty() {
        bail!(
            "the sources define none of kavro_prime, kavro_prepare, kavro_present, kavro_package, kavro_post\n  hint: see sdk/c/README.md for their signatures"
        );
    }
    Ok(found)
}

fn world(tmp: &Path, phases: &[&str]) -> Result<PathBuf> {
    let wit = tmp.join("wit");
    let deps = wit.join("deps").join("kavro-plugin");
    std::fs::create_dir_all(&deps)?;
    // The version is the WIT's own, not one built into this tool: a tool
    // built from another clone of a shared target dir still works.
    let mut version = None;
    for entry in std::fs::read_dir(sdk_dir().join("../../wit"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wit") {
            let text = std::fs::read_to_string(&path)?;
            version = version.or_else(|| {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix("package kavro:plugin@"))
                    .map(|v| v.trim_end_matches(';').trim().to_string())
            });
            std::fs::write(deps.join(path.file_name().expect("file")), text)?;
        }
    }
    let version = version.context("no `package kavro:plugin@VERSION;` in wit/")?;
    let mut text = format!(
        "package kavro:c-plugin;\n\nworld plugin {{\n    include kavro:plugin/base@{version};\n",
    );
    for p in phases {
        let name = if *p == "package" { "%package" } else { p };
        text += &format!("    export kavro:plugin/{name}@{version};\n");
    }
    text += "}\n";
    std::fs::write(wit.join("world.wit"), text)?;
    Ok(wit)
}

fn bindings(wit: &Path, out: &Path) -> Result<()> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_dir(wit)?;
    let world = resolve.select_world(&[pkg], Some("plugin"))?;
    let mut files = Default::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, bytes) in files.iter() {
        std::fs::write(out.join(name), bytes)?;
    }
    Ok(())
}

fn compile(sources: &[PathBuf], gen: &Path, phases: &[&str], core: &Path) -> Result<()> {
    let sdk = sdk_dir();
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "clang".into()));
    cmd.args([
        "--target=wasm32-wasi",
        "-mexec-model=reactor",
        "-O2",
        "-Wall",
    ])
    .arg("-I")
    .arg(gen)
    .arg("-I")
    .arg(sdk.join("include"));
    for p in phases {
        cmd.arg(format!("-DKAVRO_PHASE_{}", p.to_uppercase()));
    }
    cmd.args(sources)
        .arg(sdk.join("kavro.c"))
        .arg(gen.join("plugin.c"))
        .arg(gen.join("plugin_component_type.o"))
        .arg("-o")
        .arg(core);
    let status = cmd
        .status()
        .context("running clang (apt-get install clang lld wasi-libc)")?;
    if !status.success() {
        bail!("clang failed");
    }
    Ok(())
}

fn componentize(core: &Path, out: &Path) -> Result<()> {
    let module = std::fs::read(core)?;
    let component = wit_component::ComponentEncoder::default()
        .module(&module)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()?;
    std::fs::write(out, component)?;
    Ok(())
}

fn build(sources: Vec<PathBuf>, out: PathBuf, keep: Option<PathBuf>) -> Result<()> {
    let phases = phases_in(&sources)?;
    let tmp = std::env::temp_dir().join(format!("kavro-c-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let result = (|| {
        let wit = world(&tmp, &phases)?;
        let gen = keep.clone().unwrap_or_else(|| tmp.join("gen"));
        bindings(&wit, &gen)?;
        let core = tmp.join("core.wasm");
        compile(&sources, &gen, &phases, &core)?;
        componentize(&core, &out)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    println!("built {} ({})", out.display(), phases.join(", "));
    Ok(())
}

fn usage() -> ! {
    eprintln!("usage: kavro-c build SOURCE.c [MORE.c ...] -o PLUGIN.wasm [--keep-bindings DIR]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("build") {
        usage();
    }
    let (mut sources, mut out, mut keep) = (Vec::new(), None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-o" => out = args.next().map(PathBuf::from),
            "--keep-bindings" => keep = args.next().map(PathBuf::from),
            "-h" | "--help" => usage(),
            _ => sources.push(PathBuf::from(a)),
        }
    }
    let (Some(out), false) = (out, sources.is_empty()) else {
        usage()
    };
    if let Err(e) = build(sources, out, keep) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
