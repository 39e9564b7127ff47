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
fn unloadable_wasm_is_refused_with_its_file() {
    let b = Host::builder();
    std::fs::create_dir_all(b.plugins_dir()).unwrap();
    std::fs::write(b.plugins_dir().join("broken.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();
    std::fs::write(b.plugins_dir().join("text.wasm"), b"hello").unwrap();
    let (ok, out) = b.validate();
    assert!(!ok);
    assert!(out.contains("broken.wasm"), "{out}");
    assert!(out.contains("not a loadable WebAssembly component"), "{out}");
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
