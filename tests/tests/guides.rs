//! The first-plugin guides, run as a reader runs them: every shell block in
//! README.md and the SDK READMEs that follows a `<!-- guide: NAME -->` line
//! runs in an empty folder with `KAVRO` set to this checkout, and each
//! `# → TEXT` comment in it must appear in what the block printed.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Guide {
    name: String,
    script: String,
    expected: Vec<String>,
}

/// The guides of one Markdown file.
fn guides_in(file: &Path) -> Vec<Guide> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut guides = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("<!-- guide: ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next(),
            Some("```sh"),
            "{}: a shell block follows the guide marker",
            file.display()
        );
        let script: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        let expected = script
            .iter()
            .filter_map(|l| l.split_once("# → ").map(|(_, t)| t.trim().to_string()))
            .collect();
        guides.push(Guide {
            name: name.to_string(),
            script: script.join("\n"),
            expected,
        });
    }
    guides
}

fn repo() -> PathBuf {
    kavro_e2e::crate_dir().parent().unwrap().to_path_buf()
}

/// Runs one file's guides, each in a fresh folder, bounded in time.
fn run_guides(file: &str, count: usize) {
    kavro_e2e::require_build();
    let guides = guides_in(&repo().join(file));
    assert_eq!(guides.len(), count, "{file}: guides found");
    for g in guides {
        let dir = tempfile::tempdir().unwrap();
        // The harness stops what a failed guide left running in the background.
        let script = format!(
            "set -eo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}\n",
            g.script
        );
        let out = Command::new("timeout")
            .args(["600", "bash", "-c", &script])
            .current_dir(dir.path())
            .env("KAVRO", repo())
            .output()
            .expect("run bash");
        let text = kavro_e2e::output_text(&out);
        assert!(
            out.status.success(),
            "{file}: guide `{}` failed ({}):\n{text}",
            g.name,
            out.status
        );
        for e in &g.expected {
            assert!(
                text.contains(e.as_str()),
                "{file}: guide `{}` did not print `{e}`:\n{text}",
                g.name
            );
        }
    }
}

#[test]
fn rust_guide() {
    run_guides("README.md", 1);
}

#[test]
fn python_guide() {
    run_guides("sdk/python/README.md", 1);
}

#[test]
fn js_guide() {
    run_guides("sdk/js/README.md", 1);
}

#[test]
fn c_guide() {
    run_guides("sdk/c/README.md", 1);
}
