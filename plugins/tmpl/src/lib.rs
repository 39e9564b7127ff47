//! Kvarn's templates as a `!>` file directive: `!> tmpl base.html
//! extra.html` on a static page's first line fills the page's `[name]`
//! placeholders with the sections of those template files, read from the
//! directory the operator granted (later files override earlier ones).
//!
//! A template file holds sections: a line that is exactly `[name]` (ASCII
//! letters, digits, `-`, `_`) starts one, whose content is the lines after
//! it up to the next section line, without the line break before that
//! line (or before the end of the file). Text before the first section is
//! ignored. In the page, `\[` is a literal `[`, and `[x]` for a name with
//! no section stays as it is. A section's content is put in as it is: its
//! own `[name]`s are not filled.
//!
//! Anything wrong (no argument, a file name with `..` or a leading `/`, a
//! file that cannot be read or is not UTF-8, a page that is not UTF-8) is
//! logged and answered 500: a page is never served half-filled.
//!
//! ```toml
//! [config]
//! dir = "/templates"   # where the files are, as the plugin sees it
//! [dirs]
//! "/templates" = "./templates"
//! ```

use std::collections::HashMap;
use std::path::Path;

use kavro_sdk::{
    config, export, log, Directive, Manifest, Plugin, Present, PresentOutcome, Request, Response,
};

/// The directory templates are read from when `dir` is not set.
const DEFAULT_DIR: &str = "/templates";

/// Section name -> content.
type Sections = HashMap<String, String>;

/// A section or placeholder name: ASCII letters, digits, `-` and `_`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The section a template line starts, if it is exactly `[name]` (a
/// trailing `\r` of a CRLF file aside).
fn section_line(line: &str) -> Option<&str> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    line.strip_prefix('[')?
        .strip_suffix(']')
        .filter(|name| is_name(name))
}

/// Adds a template file's sections to `into`, replacing same-named ones.
fn parse_sections(text: &str, into: &mut Sections) {
    fn finish(into: &mut Sections, name: Option<&str>, mut content: String) {
        if let Some(name) = name {
            if content.ends_with('\n') {
                content.pop();
                if content.ends_with('\r') {
                    content.pop();
                }
            }
            into.insert(name.to_string(), content);
        }
    }
    let mut current: Option<&str> = None;
    let mut content = String::new();
    for line in text.split_inclusive('\n') {
        if let Some(name) = section_line(line.strip_suffix('\n').unwrap_or(line)) {
            finish(into, current, std::mem::take(&mut content));
            current = Some(name);
        } else if current.is_some() {
            content.push_str(line);
        }
    }
    finish(into, current, content);
}

/// The page with each `[name]` of a known section replaced by its content,
/// and each `\[` by `[`.
fn substitute(page: &str, sections: &Sections) -> String {
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(at) = rest.find(['\\', '[']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("\\[") {
            out.push('[');
            rest = after;
            continue;
        }
        if let Some(inner) = tail.strip_prefix('[') {
            let placeholder = inner
                .find(']')
                .map(|end| &inner[..end])
                .filter(|name| is_name(name))
                .and_then(|name| Some((name.len(), sections.get(name)?)));
            if let Some((len, content)) = placeholder {
                out.push_str(content);
                rest = &inner[len + 1..];
                continue;
            }
        }
        // A lone `\`, or a `[` that opens no known placeholder.
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// Refuses a template argument that could leave the template directory.
fn check_name(arg: &str) -> Result<(), String> {
    if arg.contains("..") || arg.starts_with('/') {
        return Err(format!(
            "template `{arg}`: names may not contain `..` or start with `/`"
        ));
    }
    Ok(())
}

/// The sections of the named templates, in order, read with `read`.
fn load(
    args: &[String],
    read: impl Fn(&str) -> Result<String, String>,
) -> Result<Sections, String> {
    if args.is_empty() {
        return Err("`!> tmpl` names no template file (`!> tmpl base.html`)".into());
    }
    let mut sections = Sections::new();
    for arg in args {
        check_name(arg)?;
        parse_sections(&read(arg)?, &mut sections);
    }
    Ok(sections)
}

/// Reads template `name` from `dir` (through WASI).
fn read_from(dir: &str, name: &str) -> Result<String, String> {
    let path = Path::new(dir).join(name);
    std::fs::read_to_string(&path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::InvalidData => "not UTF-8".to_string(),
            _ => e.to_string(),
        };
        format!("template `{name}` ({}): {why}", path.display())
    })
}

/// The filled page, or why it cannot be.
fn render(
    page: Vec<u8>,
    args: &[String],
    read: impl Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let page = String::from_utf8(page).map_err(|_| "the page is not UTF-8".to_string())?;
    let sections = load(args, read)?;
    Ok(substitute(&page, &sections))
}

struct Tmpl {
    dir: String,
}

impl Default for Tmpl {
    fn default() -> Self {
        let dir = config::get("dir")
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_DIR.to_string());
        Tmpl { dir }
    }
}

impl Plugin for Tmpl {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")).answers("tmpl")
    }
}

impl Present for Tmpl {
    fn on_directive(
        &self,
        _: &mut (),
        req: &Request,
        resp: &Response,
        body: Vec<u8>,
        directive: &Directive,
    ) -> PresentOutcome {
        match render(body, &directive.args, |name| read_from(&self.dir, name)) {
            Ok(page) => PresentOutcome::Replace(page.into_bytes()),
            Err(why) => {
                log::error(&format!("tmpl: {} not served: {why}", req.path()));
                if let Err(e) = resp.set_status(500) {
                    log::error(&format!("tmpl: cannot set status 500: {e:?}"));
                }
                let _ = resp.set_header("content-type", "text/plain; charset=utf-8");
                PresentOutcome::Replace(b"500 Internal Server Error: template failed\n".to_vec())
            }
        }
    }
}

export!(Tmpl: present);

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(text: &str) -> Sections {
        let mut s = Sections::new();
        parse_sections(text, &mut s);
        s
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sections_parse() {
        let s = sections("ignored\n[head]\n<title>x</title>\n[foot]\n<p>a</p>\n\n<p>b</p>\n");
        assert_eq!(s.len(), 2);
        assert_eq!(s["head"], "<title>x</title>");
        // Only the one line break before the end is dropped.
        assert_eq!(s["foot"], "<p>a</p>\n\n<p>b</p>");
        // No break at the end of the file; empty sections; CRLF.
        let s = sections("[a]\n[b]\r\nline\r\n[c-d_1]\nlast");
        assert_eq!(s["a"], "");
        assert_eq!(s["b"], "line");
        assert_eq!(s["c-d_1"], "last");
        // Not exactly `[name]`: content.
        let s = sections("[a]\n [b]\n[b] x\n[b c]\n[]\n");
        assert_eq!(s.len(), 1);
        assert_eq!(s["a"], " [b]\n[b] x\n[b c]\n[]");
        assert!(sections("no sections\nat all\n").is_empty());
        // The same name twice in one file: the later one.
        assert_eq!(sections("[a]\n1\n[a]\n2\n")["a"], "2");
    }

    #[test]
    fn later_files_override() {
        let read = |name: &str| match name {
            "base.html" => Ok("[head]\nbase head\n[foot]\nbase foot\n".to_string()),
            "extra.html" => Ok("[head]\nextra head\n".to_string()),
            _ => Err(format!("template `{name}`: not found")),
        };
        let s = load(&args(&["base.html", "extra.html"]), read).unwrap();
        assert_eq!(s["head"], "extra head");
        assert_eq!(s["foot"], "base foot");
        let e = load(&args(&["base.html", "gone.html"]), read).unwrap_err();
        assert!(e.contains("gone.html"), "{e}");
        assert!(load(&[], read).is_err());
    }

    #[test]
    fn names_stay_in_the_directory() {
        let read = |_: &str| -> Result<String, String> { panic!("must not be read") };
        for bad in ["../secret", "a/../../b", "/etc/passwd", "..", "x..y"] {
            let e = load(&args(&[bad]), read).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert!(check_name("parts/nav.html").is_ok());
    }

    #[test]
    fn substitution_and_escapes() {
        let s = sections("[title]\nHello\n[nav]\n<a href=\"/\">home</a>\n[loop]\nsee [title]\n");
        let page = "<h1>[title]</h1>[nav] [unknown] \\[title] a\\b [ti tle] [[title]] [title";
        assert_eq!(
            substitute(page, &s),
            "<h1>Hello</h1><a href=\"/\">home</a> [unknown] [title] a\\b [ti tle] [Hello] [title"
        );
        // Content is not filled again.
        assert_eq!(substitute("[loop]", &s), "see [title]");
        // An escape at the end, a lone backslash at the end, non-ASCII text.
        assert_eq!(substitute("é\\[", &s), "é[");
        assert_eq!(substitute("x\\", &s), "x\\");
        assert_eq!(substitute("ü[title]ü", &s), "üHelloü");
        assert_eq!(substitute("", &s), "");
    }

    #[test]
    fn render_refuses_what_it_cannot_fill() {
        let read = |_: &str| Ok("[t]\nT\n".to_string());
        assert_eq!(
            render(b"<p>[t]</p>".to_vec(), &args(&["a"]), read).unwrap(),
            "<p>T</p>"
        );
        let e = render(vec![0xff, b'['], &args(&["a"]), read).unwrap_err();
        assert!(e.contains("UTF-8"), "{e}");
        assert!(render(b"x".to_vec(), &[], read).is_err());
    }

    #[test]
    fn reads_files_from_the_directory() {
        let dir = std::env::temp_dir().join(format!("kavro-tmpl-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("parts")).unwrap();
        std::fs::write(dir.join("parts/base.html"), "[x]\nfrom disk\n").unwrap();
        std::fs::write(dir.join("bad.html"), [b'[', b'x', b']', b'\n', 0xff]).unwrap();
        let dir_s = dir.to_str().unwrap();
        assert_eq!(
            read_from(dir_s, "parts/base.html").unwrap(),
            "[x]\nfrom disk\n"
        );
        let e = read_from(dir_s, "bad.html").unwrap_err();
        assert!(e.contains("bad.html") && e.contains("not UTF-8"), "{e}");
        let e = read_from(dir_s, "missing.html").unwrap_err();
        assert!(e.contains("missing.html"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
