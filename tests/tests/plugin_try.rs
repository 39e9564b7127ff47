//! `kavro-host plugin try`: one request through a real plugin, without a
//! server, and what it prints for each phase, for a failure and for files
//! that are not plugins.

use std::path::Path;
use std::process::Command;

/// Runs `kavro-host plugin try PLUGIN ARGS...`; returns (exit code, stdout + stderr).
fn try_plugin(plugin: &Path, args: &[&str]) -> (i32, String) {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(kavro_e2e::bin_dir().join("kavro-host"))
        .args(["plugin", "try"])
        .arg(plugin)
        .args(args)
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .expect("run kavro-host");
    let text = kavro_e2e::output_text(&out);
    (out.status.code().unwrap_or(-1), text)
}

fn assert_has(text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "`{w}` missing from:\n{text}");
    }
}

/// Every phase, its header edits, a forward, a KV write and the settings
/// beside the plugin (a capability, a config value over them).
#[test]
fn every_phase_of_a_plugin_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("probe.wasm");
    std::fs::copy(kavro_e2e::wasm("probe"), &plugin).unwrap();
    std::fs::write(dir.path().join("probe.toml"), "capabilities = [\"kv\"]\n").unwrap();
    let (code, out) = try_plugin(
        &plugin,
        &[
            "--path",
            "/x?y=1",
            "-H",
            "x-shout: yes",
            "--header",
            "x-forward-to: app",
            "--response-body",
            "<p>hi</p>",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_has(
        &out,
        &[
            "exports   prime, prepare, present, package, post",
            "granted   kv",
            "request   GET /x?y=1",
            "prime     continue",
            "request header set      x-probe-mark: 1, 2",
            "prepare   forward to upstream `app` as /forwarded?from=probe",
            "upstream header  x-via: probe",
            // A proxied head is sent before its body: package, then present.
            "package runs before present",
            "package   done",
            "response header set      x-probe-phases: rpk",
            "present   replace the body (9 bytes)",
            "post      done",
            "kv set   last-post = \"200 9 /x\"",
            "response  200 OK",
            "<P>HI</P>",
        ],
    );

    // A phase alone; the plugin answers from prime and present sees the reply.
    let (code, out) = try_plugin(&plugin, &["--path", "/kv/incr", "--phases", "prime"]);
    assert_eq!(code, 0, "{out}");
    assert_has(&out, &["prime     respond 200", "kv set   hits = \"1\""]);
    assert!(!out.contains("package   done"), "{out}");

    // Not proxied: present before package, and present may set headers.
    let (code, out) = try_plugin(&plugin, &["-H", "x-shout: yes"]);
    assert_eq!(code, 0, "{out}");
    assert_has(
        &out,
        &[
            "response header set      x-presented: upper",
            "response header set      x-probe-phases: rpbk",
        ],
    );
    let present = out.find("present   ").unwrap();
    assert!(present < out.find("package   ").unwrap(), "{out}");
}

/// Settings beside the plugin that name routes are read as they are (a try
/// has no routes); the cache flags may come before `plugin`; the server's
/// flags may not.
#[test]
fn settings_and_flags_around_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("only-package.wasm");
    std::fs::copy(kavro_e2e::wasm("only-package"), &plugin).unwrap();
    std::fs::write(
        dir.path().join("only-package.toml"),
        "routes = [\"api\", \"home\"]\nfailure = \"fail-open\"\n",
    )
    .unwrap();
    let (code, out) = try_plugin(&plugin, &[]);
    assert_eq!(code, 0, "{out}");
    assert_has(&out, &["package   done"]);

    let bin = kavro_e2e::bin_dir().join("kavro-host");
    let out = Command::new(&bin)
        .args(["--no-cache", "plugin", "try"])
        .arg(&plugin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(&bin)
        .args(["--listen", "127.0.0.1:1", "plugin", "try"])
        .arg(&plugin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_has(
        &String::from_utf8_lossy(&out.stderr),
        &["--listen is a flag of the server, not of `plugin`"],
    );
}

/// Each single-phase plugin alone, as a new author's first plugin is.
#[test]
fn each_phase_alone() {
    for (plugin, args, line) in [
        (
            "only-prime",
            &["-H", "x-answer: 1"][..],
            "prime     respond 200",
        ),
        ("only-prepare", &[][..], "prepare   "),
        ("only-present", &[][..], "present   "),
        ("only-package", &[][..], "package   done"),
        ("only-post", &[][..], "post      done"),
    ] {
        let (code, out) = try_plugin(&kavro_e2e::wasm(plugin), args);
        assert_eq!(code, 0, "{plugin}: {out}");
        assert_has(&out, &[line, "response  "]);
    }
}

/// A guest's exception reaches the author with its traceback; the plugin's
/// failure policy decides the response, and the exit code says it failed.
#[test]
fn a_failure_shows_the_guests_error_and_the_policy() {
    let (code, out) = try_plugin(&kavro_e2e::wasm("failing-python"), &["--path", "/raise"]);
    assert_eq!(code, 1, "{out}");
    assert_has(
        &out,
        &[
            "prime     FAILED, reported",
            "Traceback (most recent call last):",
            "failing.py\", line 13, in prime",
            "ValueError: failing on purpose in prime",
            "fail-closed: the host answers 500",
            "post      skipped: the plugin failed earlier in this request",
            "response  500",
        ],
    );
    // A Rust panic, its message and location; a loop, stopped at its deadline.
    let hostile = kavro_e2e::wasm("hostile");
    let (code, out) = try_plugin(&hostile, &["-H", "x-hostile: trap"]);
    assert_eq!(code, 1, "{out}");
    assert_has(
        &out,
        &[
            "prime     FAILED, trap",
            "the plugin reported: panicked at tests/plugins/hostile/src/lib.rs",
            "hostile: trap on purpose",
        ],
    );
    for (mode, line) in [
        ("loop-package", "package   FAILED, deadline after"),
        ("loop-present", "present   FAILED, deadline after"),
        ("bad-uri", "prime     FAILED, bad-output"),
        ("bad-status", "FAILED, bad-output"),
    ] {
        let (code, out) = try_plugin(&hostile, &["-H", &format!("x-hostile: {mode}")]);
        assert_eq!(code, 1, "{mode}: {out}");
        assert_has(
            &out,
            &[line, "fail-closed: the host answers 500", "response  500"],
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("failing.wasm");
    std::fs::copy(kavro_e2e::wasm("failing-python"), &plugin).unwrap();
    std::fs::write(dir.path().join("failing.toml"), "failure = \"fail-open\"\n").unwrap();
    let (code, out) = try_plugin(&plugin, &["--path", "/raise"]);
    assert_eq!(code, 1, "{out}");
    assert_has(
        &out,
        &[
            "fail-open: the host goes on without the plugin",
            "response  200",
        ],
    );
}

/// Config values from the command line reach the plugin.
#[test]
fn config_values_from_the_command_line() {
    let (code, out) = try_plugin(
        &kavro_e2e::wasm("headers"),
        &[
            "--config",
            "request_set=x-env: prod",
            "--config",
            "response_remove=x-request-id",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_has(
        &out,
        &[
            "request header set      x-env: prod",
            "response header removed  x-request-id",
        ],
    );
}

/// Files that are not plugins, phases a plugin lacks and bad arguments:
/// a message that names what was found, and exit code 2.
#[test]
fn what_is_not_a_plugin_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello").unwrap();
    for (plugin, args, wanted) in [
        (text.clone(), &[][..], "not a WebAssembly file"),
        (
            dir.path().join("missing.wasm"),
            &[][..],
            "cannot read",
        ),
        (
            kavro_e2e::wasm("wasi-command"),
            &[][..],
            "exports none of the phases (prime, prepare, present, package, post); it exports: [wasi:cli/run",
        ),
        (
            kavro_e2e::wasm("other-version"),
            &[][..],
            "built against another version of kavro:plugin",
        ),
        (
            kavro_e2e::wasm("only-prime"),
            &["--phases", "present"][..],
            "has no present phase: it exports prime",
        ),
        (
            kavro_e2e::wasm("only-prime"),
            &["--phases", "prim"][..],
            "`prim` is not a phase",
        ),
        (
            kavro_e2e::wasm("only-prime"),
            &["--config", "kavro.toml"][..],
            "`kavro.toml` is not a config value",
        ),
        (
            kavro_e2e::wasm("only-prime"),
            &["-H", "no colon"][..],
            "`no colon` is not a header",
        ),
        (
            kavro_e2e::wasm("only-prime"),
            &["--path", "nowhere"][..],
            "`nowhere` is not a path",
        ),
        (
            kavro_e2e::wasm("probe"),
            &[][..],
            "needs capabilities it was not granted: \"kv\"",
        ),
    ] {
        let (code, out) = try_plugin(&plugin, args);
        assert_eq!(code, 2, "{}: {out}", plugin.display());
        assert_has(&out, &["error: ", wanted, "hint: "]);
    }
}
