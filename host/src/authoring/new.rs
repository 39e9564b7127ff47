//! `kavro-host plugin new`: a ready-to-build plugin folder from sdk/templates.
//!
//! The templates are built into the binary; the SDK folder is needed only
//! for its absolute path, which the generated files name (the build script,
//! Rust's `kavro-sdk` dependency, the references in the README). The
//! template syntax is described in sdk/templates/README.md.

use std::path::{Path, PathBuf};

use crate::cli::{Lang, NewArgs};
use crate::plugin::{Phase, Phases};

/// The phases' names, in the order templates and generated files list them.
const PHASES: [&str; 5] = {
    let [a, b, c, d, e] = Phase::ALL;
    [a.name(), b.name(), c.name(), d.name(), e.name()]
};

/// The longest plugin name accepted.
const MAX_NAME: usize = 64;

/// A template: the name of the file it writes (`NAME` and `NAME_` replaced)
/// and its text.
type Template = (&'static str, &'static str);

macro_rules! template {
    ($lang:literal, $file:literal) => {
        (
            $file,
            include_str!(concat!(
                "../../../sdk/templates/",
                $lang,
                "/",
                $file,
                ".tmpl"
            )),
        )
    };
}

const RUST: &[Template] = &[
    template!("rust", "Cargo.toml"),
    template!("rust", "src/lib.rs"),
    template!("rust", "NAME.toml"),
    template!("rust", "README.md"),
    template!("rust", "build.sh"),
];
const PYTHON: &[Template] = &[
    template!("python", "NAME_.py"),
    template!("python", "NAME.toml"),
    template!("python", "README.md"),
    template!("python", "build.sh"),
];
const TS: &[Template] = &[
    template!("ts", "NAME.ts"),
    template!("ts", "NAME.toml"),
    template!("ts", "README.md"),
    template!("ts", "build.sh"),
];
const JS: &[Template] = &[
    template!("js", "NAME.js"),
    template!("js", "NAME.toml"),
    template!("js", "README.md"),
    template!("js", "build.sh"),
];
const C: &[Template] = &[
    template!("c", "NAME.c"),
    template!("c", "NAME.toml"),
    template!("c", "README.md"),
    template!("c", "build.sh"),
];

/// The templates of a language, and its folder under sdk/templates.
fn templates(lang: Lang) -> (&'static str, &'static [Template]) {
    match lang {
        Lang::Rust => ("rust", RUST),
        Lang::Python => ("python", PYTHON),
        Lang::Ts => ("ts", TS),
        Lang::Js => ("js", JS),
        Lang::C => ("c", C),
    }
}

/// A file of the language's SDK, relative to the sdk folder, whose
/// presence says the folder is one (the generated build uses it).
fn sdk_entry(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust/Cargo.toml",
        Lang::Python => "python/kavro-py",
        Lang::Ts | Lang::Js => "js/kavro-js",
        Lang::C => "c/kavro-c",
    }
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Ts => "TypeScript",
        Lang::Js => "JavaScript",
        Lang::C => "C",
    }
}

/// Why `plugin new` stopped: printed as `error: ...` and `  hint: ...`.
#[derive(Debug)]
struct Failure {
    code: i32,
    message: String,
    hint: Option<String>,
}

impl Failure {
    /// A problem with the arguments: exit status 2.
    fn usage(message: String, hint: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message,
            hint: Some(hint.into()),
        }
    }

    /// Anything else: exit status 1.
    fn other(message: String, hint: Option<String>) -> Failure {
        Failure {
            code: 1,
            message,
            hint,
        }
    }
}

/// Writes the plugin folder; returns the exit status: 0 written, 1 the
/// folder is taken or cannot be written, 2 a bad name, phase or SDK folder.
pub fn run(args: &NewArgs) -> i32 {
    match new_plugin(args) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("error: {}", f.message);
            if let Some(h) = f.hint {
                eprintln!("  hint: {h}");
            }
            f.code
        }
    }
}

fn new_plugin(args: &NewArgs) -> Result<(), Failure> {
    check_name(&args.name, args.lang)?;
    let phases = parse_phases(&args.phases)?;
    let sdk = sdk_dir(args)?;

    let target = args.dir.join(&args.name);
    let shown = if args.dir == Path::new(".") {
        PathBuf::from(&args.name)
    } else {
        target.clone()
    };
    check_target(&target, &shown, args.force)?;

    let (folder, files) = templates(args.lang);
    let values = Values::new(&args.name, &sdk.to_string_lossy(), &phases);
    let mut rendered = Vec::new();
    for (file, text) in files {
        let out = render(text, &values).map_err(|e| {
            Failure::other(
                format!("sdk/templates/{folder}/{file}.tmpl: {e}"),
                Some("this is a bug in kavro-host's templates; please report it".into()),
            )
        })?;
        let name = file
            .replace("NAME_", &values.name_)
            .replace("NAME", &args.name);
        rendered.push((name, out));
    }

    for (name, text) in &rendered {
        let path = target.join(name);
        write(&path, text, name.ends_with(".sh")).map_err(|e| {
            Failure::other(
                format!("cannot write {}: {e}", shown.join(name).display()),
                None,
            )
        })?;
        println!("wrote {}", shown.join(name).display());
    }

    let try_path = if phases.contains(&"prime") {
        "/hello"
    } else if phases.contains(&"prepare") {
        "/hello/prepare"
    } else {
        "/"
    };
    let host = host_command();
    println!(
        "{} plugin in {}, exporting {}",
        lang_name(args.lang),
        shown.display(),
        values.phases
    );
    println!(
        "next: cd {} && ./build.sh",
        shell_word(&shown.to_string_lossy())
    );
    println!(
        "next: {host} plugin try {}.wasm --path {try_path}",
        args.name
    );
    println!(
        "next: {host} --plugins .    # serves {}.wasm with {}.toml beside it",
        args.name, args.name
    );
    Ok(())
}

/// Plugin names: `^[a-z][a-z0-9-]*$`, at most 64 characters, and not a
/// name the language's build cannot take.
fn check_name(name: &str, lang: Lang) -> Result<(), Failure> {
    const HINT: &str =
        "a plugin name is lower-case letters, digits and `-`, starting with a letter, \
                        at most 64 characters";
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        let hint = match suggest(name) {
            Some(s) => format!("{HINT}, e.g. `{s}`"),
            None => format!("{HINT}, e.g. `my-plugin`"),
        };
        return Err(Failure::usage(
            format!("`{name}` is not a valid plugin name"),
            hint,
        ));
    }
    if name.len() > MAX_NAME {
        return Err(Failure::usage(
            format!(
                "the plugin name is {} characters long; at most {MAX_NAME} are allowed",
                name.len()
            ),
            HINT,
        ));
    }
    let module = name.replace('-', "_");
    let (reserved, why): (&[&str], &str) = match lang {
        // The library's crate name is the name with `_`.
        Lang::Rust => (
            &[
                "abstract",
                "as",
                "async",
                "await",
                "become",
                "box",
                "break",
                "const",
                "continue",
                "crate",
                "do",
                "dyn",
                "else",
                "enum",
                "extern",
                "false",
                "final",
                "fn",
                "for",
                "gen",
                "if",
                "impl",
                "in",
                "let",
                "loop",
                "macro",
                "match",
                "mod",
                "move",
                "mut",
                "override",
                "priv",
                "pub",
                "ref",
                "return",
                "self",
                "static",
                "struct",
                "super",
                "trait",
                "true",
                "try",
                "type",
                "typeof",
                "unsafe",
                "unsized",
                "use",
                "virtual",
                "where",
                "while",
                "yield",
                "test",
                "std",
                "core",
                "alloc",
                "proc_macro",
            ],
            "a Rust keyword or a crate of Rust's own",
        ),
        // The module is imported by its name, and would shadow a module
        // of the same name that the build or the SDK imports.
        Lang::Python => (
            &[
                "and",
                "as",
                "assert",
                "async",
                "await",
                "break",
                "class",
                "continue",
                "def",
                "del",
                "elif",
                "else",
                "except",
                "finally",
                "for",
                "from",
                "global",
                "if",
                "import",
                "in",
                "is",
                "lambda",
                "nonlocal",
                "not",
                "or",
                "pass",
                "raise",
                "return",
                "try",
                "while",
                "with",
                "yield",
                "kavro",
                "kavro_entry",
                "wit_world",
                "componentize_py_types",
                "componentize_py_runtime",
                "importlib",
                "traceback",
                "dataclasses",
                "typing",
            ],
            "a Python keyword or a module the build imports",
        ),
        Lang::Ts | Lang::Js | Lang::C => (&[], ""),
    };
    if reserved.contains(&module.as_str()) {
        return Err(Failure::usage(
            format!(
                "`{name}` cannot name a {} plugin: `{module}` is {why}",
                lang_name(lang)
            ),
            format!("choose another name, e.g. `{name}-plugin`"),
        ));
    }
    Ok(())
}

/// A valid name close to `name`, if there is one.
fn suggest(name: &str) -> Option<String> {
    let mut s = String::new();
    for c in name.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s
        .trim_matches('-')
        .trim_start_matches(|c: char| c.is_ascii_digit());
    let s = s.trim_start_matches('-');
    (!s.is_empty() && s.len() <= MAX_NAME && s != name).then(|| s.to_string())
}

/// The phases named, each once, in the order of [`PHASES`].
fn parse_phases(list: &[String]) -> Result<Vec<&'static str>, Failure> {
    let mut chosen = Phases::default();
    for item in list.iter().filter(|i| !i.trim().is_empty()) {
        let phase: Phase = item.parse().map_err(|e: String| {
            Failure::usage(
                e,
                format!(
                    "--phases takes one or more of {}, comma-separated",
                    PHASES.join(", ")
                ),
            )
        })?;
        chosen[phase] = true;
    }
    let phases = chosen.names();
    if phases.is_empty() {
        return Err(Failure::usage(
            "no phase chosen".into(),
            format!(
                "--phases takes one or more of {}, comma-separated",
                PHASES.join(", ")
            ),
        ));
    }
    Ok(phases)
}

/// The SDK folder: `--sdk`, `$KAVRO_SDK`, or the checkout's the host was
/// built from; absolute, holding the language's SDK.
fn sdk_dir(args: &NewArgs) -> Result<PathBuf, Failure> {
    const HINT: &str = "pass --sdk with the sdk/ folder of a Kavro checkout (or set KAVRO_SDK)";
    let (dir, from) = if let Some(d) = &args.sdk {
        (d.clone(), "--sdk")
    } else if let Some(d) = std::env::var_os("KAVRO_SDK").filter(|d| !d.is_empty()) {
        (PathBuf::from(d), "KAVRO_SDK")
    } else {
        (
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk")),
            "the checkout kavro-host was built from",
        )
    };
    let dir = dir.canonicalize().map_err(|e| {
        Failure::usage(
            format!("the SDK folder {} ({from}): {e}", dir.display()),
            HINT,
        )
    })?;
    let entry = sdk_entry(args.lang);
    if !dir.join(entry).is_file() {
        return Err(Failure::usage(
            format!(
                "{} ({from}) is not a Kavro sdk/ folder: it has no {entry}",
                dir.display()
            ),
            HINT,
        ));
    }
    // The path goes into shell scripts, TOML strings and comments as is.
    let text = dir.to_string_lossy();
    if text.contains(|c: char| c.is_control() || "\"'\\$`".contains(c))
        || text.contains("*/")
        || text.contains("{{")
        || text.contains(char::REPLACEMENT_CHARACTER)
    {
        return Err(Failure::usage(
            format!(
                "the SDK folder's path {} holds characters the generated files cannot quote",
                dir.display()
            ),
            "use a path without quotes, `\\`, `$`, backquotes or control characters \
             (a symbolic link to the folder will do) with --sdk",
        ));
    }
    Ok(dir)
}

/// Refuses a folder that holds anything, unless `force`.
fn check_target(target: &Path, shown: &Path, force: bool) -> Result<(), Failure> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::other(
            format!("cannot read {}: {e}", shown.display()),
            None,
        )),
        Ok(_) if !target.is_dir() => Err(Failure::other(
            format!("{} exists and is not a folder", shown.display()),
            Some("choose another name or folder".into()),
        )),
        Ok(_) => {
            let empty = std::fs::read_dir(target)
                .map_err(|e| Failure::other(format!("cannot read {}: {e}", shown.display()), None))?
                .next()
                .is_none();
            if empty || force {
                Ok(())
            } else {
                Err(Failure::other(
                    format!(
                        "{} exists; choose another name or folder, or pass --force to overwrite its template files",
                        shown.display()
                    ),
                    None,
                ))
            }
        }
    }
}

/// Writes one file, replacing a file (not following a symbolic link) that
/// is there; `executable` makes it 0755.
fn write(path: &Path, text: &str, executable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(path)?;
    }
    std::fs::write(path, text)?;
    if executable {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// How to run this kavro-host: `kavro-host` when that is what PATH finds,
/// else its full path.
fn host_command() -> String {
    let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return "kavro-host".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("kavro-host"))
            .find(|p| p.is_file())
            .and_then(|p| p.canonicalize().ok())
            .is_some_and(|p| p == me)
    });
    if on_path {
        "kavro-host".into()
    } else {
        shell_word(&me.to_string_lossy())
    }
}

/// `s` quoted for a POSIX shell if it needs to be.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What the placeholders become.
struct Values {
    name: String,
    name_: String,
    sdk: String,
    /// The checkout's docs/ folder, beside sdk/.
    docs: String,
    /// `"prime", "package"`
    features: String,
    /// `prime, package`
    phases: String,
    chosen: Vec<&'static str>,
}

impl Values {
    fn new(name: &str, sdk: &str, phases: &[&'static str]) -> Values {
        Values {
            name: name.to_string(),
            name_: name.replace('-', "_"),
            sdk: sdk.to_string(),
            docs: std::path::Path::new(sdk)
                .parent()
                .unwrap_or(std::path::Path::new("/"))
                .join("docs")
                .display()
                .to_string(),
            features: phases
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", "),
            phases: phases.join(", "),
            chosen: phases.to_vec(),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        Some(match key {
            "name" => &self.name,
            "name_" => &self.name_,
            "sdk" => &self.sdk,
            "docs" => &self.docs,
            "features" => &self.features,
            "phases" => &self.phases,
            _ => return None,
        })
    }
}

/// Expands a template: phase sections, then placeholders. Anything else
/// between `{{` and `}}` is an error, naming the line.
fn render(template: &str, values: &Values) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    // The open sections: (phase, chosen).
    let mut open: Vec<(&str, bool)> = Vec::new();
    for (i, line) in template.split_inclusive('\n').enumerate() {
        let n = i + 1;
        let marker = line.trim();
        if let Some(phase) = marker
            .strip_prefix("{{#")
            .and_then(|m| m.strip_suffix("}}"))
        {
            if !PHASES.contains(&phase) {
                return Err(format!(
                    "line {n}: `{marker}` names no phase (phases are {})",
                    PHASES.join(", ")
                ));
            }
            open.push((phase, values.chosen.contains(&phase)));
            continue;
        }
        if let Some(phase) = marker
            .strip_prefix("{{/")
            .and_then(|m| m.strip_suffix("}}"))
        {
            match open.pop() {
                Some((p, _)) if p == phase => continue,
                Some((p, _)) => return Err(format!("line {n}: `{marker}` closes `{{{{#{p}}}}}`")),
                None => return Err(format!("line {n}: `{marker}` closes no section")),
            }
        }
        if open.iter().all(|(_, chosen)| *chosen) {
            substitute(line, values, &mut out).map_err(|e| format!("line {n}: {e}"))?;
        }
    }
    if let Some((p, _)) = open.last() {
        return Err(format!("`{{{{#{p}}}}}` is not closed"));
    }
    Ok(out)
}

/// Appends `line` to `out` with its placeholders replaced.
fn substitute(line: &str, values: &Values, out: &mut String) -> Result<(), String> {
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!("`{}` is not closed", rest[start..].trim_end()));
        };
        let key = &after[..end];
        match values.get(key) {
            Some(v) => out.push_str(v),
            None => {
                return Err(format!(
                    "unknown placeholder `{{{{{key}}}}}` (placeholders are {{{{name}}}}, \
                     {{{{name_}}}}, {{{{sdk}}}}, {{{{docs}}}}, {{{{features}}}}, {{{{phases}}}}, and phase \
                     sections on lines of their own)"
                ))
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANGS: [Lang; 5] = [Lang::Rust, Lang::Python, Lang::Ts, Lang::Js, Lang::C];

    /// Every phase set the tests render: all, and each alone.
    fn phase_sets() -> Vec<Vec<&'static str>> {
        let mut sets = vec![PHASES.to_vec()];
        sets.extend(PHASES.iter().map(|p| vec![*p]));
        sets
    }

    fn render_all(lang: Lang, phases: &[&'static str]) -> Vec<(String, String)> {
        let values = Values::new("my-plugin", "/opt/kavro/sdk", phases);
        let (folder, files) = templates(lang);
        files
            .iter()
            .map(|(file, text)| {
                let out = render(text, &values).unwrap_or_else(|e| {
                    panic!("{folder}/{file} with {phases:?}: {e}");
                });
                (file.to_string(), out)
            })
            .collect()
    }

    #[test]
    fn every_template_expands_completely() {
        for lang in LANGS {
            for phases in phase_sets() {
                for (file, out) in render_all(lang, &phases) {
                    let what = format!("{lang:?} {file} with {phases:?}");
                    assert!(!out.contains("{{"), "{what}: `{{{{` left:\n{out}");
                    assert!(out.ends_with('\n'), "{what}: no final newline");
                    assert!(
                        !out.contains("\n\n\n\n"),
                        "{what}: blank lines pile up:\n{out}"
                    );
                }
            }
        }
    }

    /// What each build reads to decide the exports: exactly the phases
    /// chosen are defined.
    #[test]
    fn sources_define_exactly_the_phases_chosen() {
        for lang in LANGS {
            for phases in phase_sets() {
                let files = render_all(lang, &phases);
                // The source: src/lib.rs after Cargo.toml, else the first file.
                let source = &files[usize::from(lang == Lang::Rust)].1;
                for p in PHASES {
                    let defined = match lang {
                        Lang::Rust => source.contains(&format!("impl {} for MyPlugin", title(p))),
                        Lang::Python => source.contains(&format!("    def {p}(self, ")),
                        // kavro-js's test: a line starting with the name and `(` or `:`.
                        Lang::Ts | Lang::Js => source.lines().any(|l| {
                            let l = l.trim_start();
                            l.strip_prefix(p)
                                .is_some_and(|r| r.trim_start().starts_with(['(', ':']))
                        }),
                        // kavro-c's: `kavro_PHASE` followed by `(`, anywhere.
                        Lang::C => source.contains(&format!("kavro_{p}(")),
                    };
                    assert_eq!(
                        defined,
                        phases.contains(&p),
                        "{lang:?} with {phases:?}: phase {p}:\n{source}"
                    );
                }
                if lang == Lang::Rust {
                    let export = format!("export!(MyPlugin: {});", phases.join(", "));
                    assert!(source.contains(&export), "{source}");
                }
            }
        }
    }

    fn title(p: &str) -> String {
        p[..1].to_ascii_uppercase() + &p[1..]
    }

    #[test]
    fn the_settings_file_parses_as_a_sidecar() {
        for lang in LANGS {
            let files = render_all(lang, &["prime", "package"]);
            let (_, text) = files.iter().find(|(f, _)| f == "NAME.toml").unwrap();
            let section: crate::config::model::PluginSection =
                toml::from_str(text).unwrap_or_else(|e| panic!("{lang:?}: {e}\n{text}"));
            assert_eq!(
                section.config.get("greeting").and_then(|v| v.as_str()),
                Some("hello")
            );
            assert!(section.name.is_none() && section.file.is_none());
            // The commented-out keys are real ones.
            let uncommented: String = text
                .lines()
                .map(|l| {
                    l.strip_prefix("# ")
                        .filter(|l| l.contains(" = "))
                        .unwrap_or(l)
                })
                .filter(|l| !l.starts_with('#') && !l.starts_with('['))
                .filter(|l| !l.starts_with("greeting"))
                .map(|l| format!("{l}\n"))
                .collect();
            let section: crate::config::model::PluginSection = toml::from_str(&uncommented)
                .unwrap_or_else(|e| panic!("{lang:?}: {e}\n{uncommented}"));
            assert_eq!(section.limits.deadline_ms, Some(100));
            assert_eq!(section.capabilities.len(), 1);
        }
    }

    #[test]
    fn the_cargo_manifest_names_the_features() {
        let files = render_all(Lang::Rust, &["present", "post"]);
        let (_, text) = files.iter().find(|(f, _)| f == "Cargo.toml").unwrap();
        let manifest: toml::Value = toml::from_str(text).unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("my-plugin"));
        let sdk = &manifest["dependencies"]["kavro-sdk"];
        assert_eq!(sdk["path"].as_str(), Some("/opt/kavro/sdk/rust"));
        assert_eq!(
            sdk["features"],
            toml::Value::Array(vec!["present".into(), "post".into()])
        );
        assert!(manifest["workspace"].as_table().unwrap().is_empty());
        assert_eq!(manifest["lib"]["crate-type"][0].as_str(), Some("cdylib"));
    }

    #[test]
    fn sections_keep_or_drop_their_lines() {
        let values = Values::new("a-b", "/s", &["prime", "post"]);
        let t = "top {{name}} {{name_}}\n  {{#prime}}  \np {{phases}}\n{{#post}}\nboth\n{{/post}}\n{{/prime}}\n\
                 {{#package}}\ngone {{nonsense}}\n{{#post}}\nalso gone\n{{/post}}\n{{/package}}\nend {{features}}";
        assert_eq!(
            render(t, &values).unwrap(),
            "top a-b a_b\np prime, post\nboth\nend \"prime\", \"post\""
        );
    }

    #[test]
    fn template_mistakes_are_errors() {
        let values = Values::new("a", "/s", &["prime"]);
        for (t, error) in [
            ("x {{nmae}}\n", "line 1: unknown placeholder `{{nmae}}`"),
            ("x\n{{#prime}}\n", "`{{#prime}}` is not closed"),
            (
                "{{#prime}}\n{{/post}}\n",
                "line 2: `{{/post}}` closes `{{#prime}}`",
            ),
            ("{{/post}}\n", "line 1: `{{/post}}` closes no section"),
            ("{{#pre}}\n{{/pre}}\n", "line 1: `{{#pre}}` names no phase"),
            ("a {{name\n", "line 1: `{{name` is not closed"),
            (
                "a {{#prime}} b\n",
                "line 1: unknown placeholder `{{#prime}}`",
            ),
        ] {
            let e = render(t, &values).unwrap_err();
            assert!(e.starts_with(error), "{t:?}: {e}");
        }
    }

    #[test]
    fn names() {
        for ok in ["a", "demo-rust", "x9", "a-b-c", &"a".repeat(64)] {
            assert!(check_name(ok, Lang::Rust).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "9a",
            "-a",
            "a_b",
            "a b",
            "a.b",
            "é",
            "Demo",
            &"a".repeat(65),
        ] {
            let f = check_name(bad, Lang::C).unwrap_err();
            assert_eq!(f.code, 2, "{bad}");
        }
        let f = check_name("My_Plugin", Lang::C).unwrap_err();
        assert!(f.hint.unwrap().contains("`my-plugin`"));
        assert_eq!(check_name("fn", Lang::Rust).unwrap_err().code, 2);
        assert!(check_name("fn", Lang::Python).is_ok());
        assert_eq!(check_name("import", Lang::Python).unwrap_err().code, 2);
        assert_eq!(check_name("kavro", Lang::Python).unwrap_err().code, 2);
        assert!(check_name("kavro", Lang::Ts).is_ok());
    }

    #[test]
    fn phases() {
        let list = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            parse_phases(&list("post,prime,post, package")).unwrap(),
            ["prime", "package", "post"]
        );
        let f = parse_phases(&list("prime,preprocess")).unwrap_err();
        assert_eq!(f.code, 2);
        assert!(f.message.contains("`preprocess`"));
        assert!(f
            .hint
            .unwrap()
            .contains("prime, prepare, present, package, post"));
        assert_eq!(parse_phases(&list("")).unwrap_err().code, 2);
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("/tmp/a-b"), "/tmp/a-b");
        assert_eq!(shell_word("my dir/x"), "'my dir/x'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
