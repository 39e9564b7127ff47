//! Bad input refuses to start: configs and plugins, with file, line and hint.

use kavro_e2e::Host;

#[test]
fn unknown_key_is_refused_with_line_field_and_hint() {
    let b = Host::builder().config("[server]\nlisten = [\"127.0.0.1:0\"]\nlisen = 1\n");
    let (ok, out) = b.validate();
    assert!(!ok, "{out}");
    assert!(out.contains("kavro.toml:3:1"), "{out}");
    assert!(out.contains("server.lisen"), "{out}");
    assert!(out.contains("hint:"), "{out}");
}

#[test]
fn undeclared_upstream_is_refused() {
    let b = Host::builder().config("[[routes]]\npath = \"/*\"\nproxy = \"ghost\"\n");
    let (ok, out) = b.validate();
    assert!(!ok);
    assert!(out.contains("kavro.toml:3:9"), "{out}");
    assert!(out.contains("upstream `ghost` is not declared"), "{out}");
}

#[test]
fn names_that_do_not_resolve_are_refused_naming_each() {
    // The config's form is fine; its names are resolved when it is built,
    // which validate does as a start would.
    let b = Host::builder().config(
        "[server]\nlisten = [\"no-such-host.invalid:8080\"]\n\
         [upstreams.api]\ntargets = [\"127.0.0.1:9\", \"gone.invalid:80\"]\n\
         [[routes]]\npath = \"/*\"\nproxy = \"api\"\n",
    );
    let (ok, out) = b.validate();
    assert!(!ok, "{out}");
    assert!(
        out.contains("server.listen: cannot listen on `no-such-host.invalid:8080`"),
        "{out}"
    );
    assert!(
        out.contains(
            "kavro.toml:4:27: upstreams.api.targets[1]: `gone.invalid:80` does not resolve"
        ),
        "{out}"
    );
    assert!(!out.contains("targets[0]"), "{out}");
}

#[test]
fn unloadable_wasm_is_refused_with_its_file() {
    let b = Host::builder();
    std::fs::create_dir_all(b.plugins_dir()).unwrap();
    std::fs::write(
        b.plugins_dir().join("broken.wasm"),
        b"\0asm\x01\0\0\0garbage",
    )
    .unwrap();
    std::fs::write(b.plugins_dir().join("text.wasm"), b"hello").unwrap();
    let (ok, out) = b.validate();
    assert!(!ok);
    assert!(out.contains("broken.wasm"), "{out}");
    assert!(
        out.contains("not a loadable WebAssembly component"),
        "{out}"
    );
    assert!(out.contains("text.wasm"), "{out}");
    assert!(out.contains("not a WebAssembly file"), "{out}");
}

#[test]
fn a_good_set_validates() {
    let b = Host::builder().plugin("headers", "headers");
    let (ok, out) = b.validate();
    assert!(ok, "{out}");
    assert!(out.contains("headers [prime,package]"), "{out}");
}

#[test]
fn the_example_site_validates_with_the_first_party_plugins() {
    let b = Host::builder()
        .plugin("headers", "headers")
        .plugin("redirects", "redirects")
        .plugin("cors", "cors")
        .plugin("router", "router")
        .plugin("access-log", "access-log");
    let site = kavro_e2e::crate_dir().join("../examples/site.toml");
    let out = std::process::Command::new(kavro_e2e::bin_dir().join("kavro-host"))
        .arg("validate")
        .arg("--config")
        .arg(&site)
        .arg("--plugins")
        .arg(b.plugins_dir())
        .arg("--no-cache")
        .output()
        .unwrap();
    let text = kavro_e2e::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("5 route(s), 2 upstream(s), 5 plugin(s)"),
        "{text}"
    );
}

#[test]
fn a_plugin_needing_an_ungranted_capability_is_refused() {
    // The probe asks for "kv"; without the grant it is refused with the fix.
    let b = Host::builder().plugin("probe", "probe");
    let (ok, out) = b.validate();
    assert!(!ok, "{out}");
    assert!(out.contains("probe.wasm"), "{out}");
    assert!(
        out.contains("needs capabilities it was not granted: \"kv\""),
        "{out}"
    );
    assert!(out.contains("capabilities = [\"kv\"]"), "{out}");
}

#[test]
fn a_component_that_exports_no_phase_is_refused() {
    let b = Host::builder().plugin("no-phases", "idle");
    let (ok, out) = b.validate();
    assert!(!ok, "{out}");
    assert!(out.contains("idle.wasm"), "{out}");
    assert!(out.contains("exports none of the phases"), "{out}");
}

#[test]
fn a_component_built_for_another_wit_version_is_refused_naming_both() {
    let b = Host::builder().plugin("other-version", "old");
    let (ok, out) = b.validate();
    assert!(!ok, "{out}");
    assert!(out.contains("old.wasm"), "{out}");
    assert!(out.contains("kavro:plugin/prime@0.0.9"), "found: {out}");
    assert!(out.contains("kavro:plugin/prime@0.2.0"), "expected: {out}");
}

#[test]
fn compiled_plugins_are_cached_by_content_hash_and_reused() {
    let b = Host::builder().plugin("headers", "headers");
    let cache = b.dir.path().join("cache");
    let (ok, out) = b.validate();
    assert!(ok, "{out}");
    let artifacts = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&cache)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let first = artifacts();
    assert_eq!(first.len(), 1, "{first:?}");
    let name = first[0].file_name().unwrap().to_string_lossy().into_owned();
    let bytes = std::fs::read(b.plugins_dir().join("headers.wasm")).unwrap();
    let hash = sha256_hex(&bytes);
    assert!(
        name.starts_with(&hash) && name.ends_with(".cwasm"),
        "{name}"
    );
    let written = std::fs::metadata(&first[0]).unwrap().modified().unwrap();

    // A second load reads the artifact instead of compiling and writing it again.
    let (ok, out) = b.validate();
    assert!(ok, "{out}");
    assert_eq!(artifacts(), first);
    assert_eq!(
        std::fs::metadata(&first[0]).unwrap().modified().unwrap(),
        written
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
