//! `!>` file directives (Kvarn's): a static file whose first line starts
//! with `!>` names present plugins to run on it, `&>` between them, each a
//! name and its arguments: `!> tmpl base.html &> nonce`. The line is not
//! served. A file's line is read once per version of the file (size,
//! times, inode) and kept parsed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The longest directive line read; a longer one is refused, not cut.
const MAX_LINE: usize = 4096;

/// Files whose first line is remembered (most have none: remembered too).
const REMEMBERED: u64 = 16_384;

/// One directive of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    /// What the plugin's present receives: the name first, then the
    /// arguments.
    pub args: Vec<String>,
}

/// A file's directive line.
#[derive(Debug)]
pub struct FileDirectives {
    pub file: PathBuf,
    /// The directives, or why the line cannot run.
    pub list: Result<Vec<Directive>, String>,
    /// Bytes of the line, its line break included: the body starts after.
    pub line_len: u64,
    /// The line as read, to tell whether the bytes served still start
    /// with it.
    pub raw: Box<[u8]>,
}

/// Whether `name` can be a directive's name: letters, digits, `-`, `_`.
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses a directive line (without its line break).
pub fn parse_line(line: &str) -> Result<Vec<Directive>, String> {
    let rest = line
        .strip_prefix("!>")
        .ok_or_else(|| "not a directive line".to_string())?;
    rest.split("&>")
        .map(|part| {
            let mut words = part.split_whitespace();
            let name = words.next().ok_or_else(|| {
                "an empty directive (nothing after `!>`, or two `&>` in a row)".to_string()
            })?;
            if !is_name(name) {
                return Err(format!(
                    "`{name}` is not a directive name (letters, digits, `-` and `_`)"
                ));
            }
            let args = std::iter::once(name).chain(words).map(str::to_string);
            Ok(Directive {
                name: name.to_string(),
                args: args.collect(),
            })
        })
        .collect()
}

/// The directive line of `whole` (a file's bytes), `known` if it still
/// starts with that line, else read again: the file may have changed since.
pub fn current(
    file: &Path,
    whole: &[u8],
    known: Arc<FileDirectives>,
) -> Option<Arc<FileDirectives>> {
    if !known.raw.is_empty() && whole.starts_with(&known.raw) {
        return Some(known);
    }
    line_of(file, whole, whole.len() as u64).map(Arc::new)
}

/// The directive line at the start of `head` (the file's first bytes, of a
/// file `len` long), if it has one.
fn line_of(file: &Path, head: &[u8], len: u64) -> Option<FileDirectives> {
    if !head.starts_with(b"!>") {
        return None;
    }
    let (line, line_len) = match head.iter().position(|&b| b == b'\n') {
        Some(end) => (&head[..end], end as u64 + 1),
        None if len as usize == head.len() => (head, len),
        None => {
            return Some(FileDirectives {
                file: file.to_path_buf(),
                list: Err(format!(
                    "the directive line is longer than {MAX_LINE} bytes"
                )),
                line_len: 0,
                raw: Box::default(),
            })
        }
    };
    let raw = head[..line_len as usize].into();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let list = match std::str::from_utf8(line) {
        Ok(text) => parse_line(text),
        Err(_) => Err("the directive line is not UTF-8".to_string()),
    };
    Some(FileDirectives {
        file: file.to_path_buf(),
        list,
        line_len,
        raw,
    })
}

/// Reads `file`'s directive line, on the calling thread.
pub fn read_now(file: &Path) -> std::io::Result<Option<FileDirectives>> {
    use std::io::Read;
    let f = std::fs::File::open(file)?;
    let len = f.metadata()?.len();
    let mut head = Vec::with_capacity(MAX_LINE + 2);
    f.take(MAX_LINE as u64 + 2).read_to_end(&mut head)?;
    Ok(line_of(file, &head, len))
}

/// The files under `root` whose directive line cannot run, malformed or
/// naming a directive `answered` says no plugin answers, as one line each
/// (for `validate`; the first 100 000 files are read).
pub fn problems(root: &Path, answered: impl Fn(&str) -> bool) -> Vec<String> {
    let files = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .take(100_000);
    let mut found = Vec::new();
    for file in files {
        let Ok(Some(line)) = read_now(file.path()) else {
            continue;
        };
        let shown = file.path().display();
        match &line.list {
            Err(why) => found.push(format!("{shown}: malformed directive line: {why}")),
            Ok(list) => found.extend(list.iter().filter(|d| !answered(&d.name)).map(|d| {
                format!(
                    "{shown}: no loaded plugin answers the directive `{}` (it would be a 500)",
                    d.name
                )
            })),
        }
    }
    found
}

/// What names one version of a file.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Version {
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    inode: u64,
}

impl Version {
    fn of(meta: &std::fs::Metadata) -> Version {
        use std::os::unix::fs::MetadataExt;
        Version {
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
        }
    }
}

/// The directive lines of a static root's files, each read once per
/// version of its file.
pub struct Lines {
    known: moka::sync::Cache<PathBuf, (Version, Option<Arc<FileDirectives>>)>,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines")
            .field("remembered", &self.known.entry_count())
            .finish()
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            known: moka::sync::Cache::new(REMEMBERED),
        }
    }
}

impl Lines {
    /// `file`'s directives, if its first line has any; a file that cannot
    /// be read has none (serving it reports why).
    pub async fn of(&self, file: &Path, meta: &std::fs::Metadata) -> Option<Arc<FileDirectives>> {
        let version = Version::of(meta);
        if let Some((seen, line)) = self.known.get(file) {
            if seen == version {
                return line;
            }
        }
        let path = file.to_path_buf();
        let read = tokio::task::spawn_blocking(move || read_now(&path)).await;
        let line = read.ok()?.ok()?.map(Arc::new);
        self.known
            .insert(file.to_path_buf(), (version, line.clone()));
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<Vec<String>> {
        parse_line(line)
            .unwrap()
            .into_iter()
            .map(|d| d.args)
            .collect()
    }

    #[test]
    fn lines_parse_into_named_directives_with_arguments() {
        assert_eq!(names("!> hide"), vec![vec!["hide"]]);
        assert_eq!(
            names("!>tmpl  base.html extra.html &> nonce"),
            vec![vec!["tmpl", "base.html", "extra.html"], vec!["nonce"]]
        );
        for bad in ["!>", "!> ", "!> tmpl &> &> nonce", "!> tmpl &>", "!> t<b>"] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_line_and_its_break_are_measured() {
        let f = Path::new("/x");
        let d = line_of(f, b"!> hide\r\n<p>", 12).unwrap();
        assert_eq!(d.line_len, 9);
        assert_eq!(d.list.unwrap()[0].name, "hide");
        let whole = line_of(f, b"!> hide", 7).unwrap();
        assert_eq!(whole.line_len, 7);
        assert!(line_of(f, b"<html>", 6).is_none());
        assert!(line_of(f, b"!", 1).is_none());
        let long = vec![b'!', b'>', b' ', b'a'];
        assert!(line_of(f, &long, 10_000).unwrap().list.is_err());
        assert!(line_of(f, b"!> \xff\n", 5).unwrap().list.is_err());
    }
}
