//! The `static` action: files under a root, with no way out of it (`..`,
//! encoded or not, and symlinks leading outside are all refused), content
//! types, ETag / Last-Modified with 304, single byte ranges, and a file's
//! precompressed sibling (`.br`, `.zst`, `.gz`) for a client that accepts
//! its coding. A file whose first line holds `!>` directives is read whole
//! for the plugins it names (see [`super::directives`]).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::{header, Method, StatusCode};
use percent_encoding::percent_decode_str;
use pingora_core::protocols::http::conditional_filter::not_modified_filter;
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::io::AsyncSeekExt;

use super::directives::{current, FileDirectives, Lines};
use super::{usable_dir, Body, Produced, SettingsError};
use crate::compression::{acceptable, Encoding};

#[derive(Debug)]
pub struct StaticRoot {
    /// Canonical, so a resolved file path can be checked by prefix.
    root: PathBuf,
    index: Vec<String>,
    strip_prefix: Option<String>,
    /// Look for precompressed siblings (a lookup a request, so opt-in).
    precompressed: bool,
    /// The files' directive lines; `None` serves files as they are.
    lines: Option<Lines>,
}

/// What a static route serves: the response, and the directives its
/// file's first line names, which run on it before it goes out.
pub struct Served {
    pub produced: Produced,
    pub directives: Option<Arc<FileDirectives>>,
}

impl From<Produced> for Served {
    fn from(produced: Produced) -> Served {
        Served {
            produced,
            directives: None,
        }
    }
}

impl StaticRoot {
    pub fn new(
        root: &Path,
        index: Vec<String>,
        strip_prefix: Option<String>,
        precompressed: bool,
        directives: bool,
    ) -> Result<StaticRoot, SettingsError> {
        let root = usable_dir("static root", root)?;
        Ok(StaticRoot {
            root,
            index,
            strip_prefix,
            precompressed,
            lines: directives.then(Lines::default),
        })
    }

    /// The root folder, canonical, if its files' directives run.
    pub fn directed_root(&self) -> Option<&Path> {
        self.lines.is_some().then_some(self.root.as_path())
    }

    /// The file under the root that `url_path` names, if it stays inside the root.
    fn resolve_relative(&self, url_path: &str) -> Option<PathBuf> {
        let path = match &self.strip_prefix {
            Some(p) => url_path.strip_prefix(p.as_str()).unwrap_or(url_path),
            None => url_path,
        };
        relative_path(path)
    }

    /// Serves the file `req` names; with `precompressed` (and the root's
    /// own setting), a sibling in a coding the client accepts may go
    /// instead (not when present plugins would read the body). A file with
    /// directives is read whole if it is at most `directed_max` bytes.
    pub async fn serve(
        &self,
        req: &RequestHeader,
        precompressed: bool,
        directed_max: usize,
    ) -> Served {
        if req.method != Method::GET && req.method != Method::HEAD {
            let mut p = Produced::text(405, "method not allowed\n");
            let _ = p.head.insert_header(header::ALLOW, "GET, HEAD");
            return p.into();
        }
        let url_path = req.uri.path();
        let Some(rel) = self.resolve_relative(url_path) else {
            return Produced::text(404, "not found\n").into();
        };
        let Some((path, meta)) = self.open_target(&rel).await else {
            return Produced::text(404, "not found\n").into();
        };
        if meta.is_dir() {
            if !url_path.ends_with('/') {
                // Relative links in an index page need the trailing slash.
                let mut location = format!("{url_path}/");
                if let Some(q) = req.uri.query() {
                    location = format!("{location}?{q}");
                }
                let mut p = Produced::text(301, "");
                let _ = p.head.insert_header(header::LOCATION, location);
                return p.into();
            }
            return match self.index_file(&path).await {
                Some((file, meta)) => {
                    self.serve_file(req, &file, &meta, precompressed, directed_max)
                        .await
                }
                None => Produced::text(404, "not found\n").into(),
            };
        }
        self.serve_file(req, &path, &meta, precompressed, directed_max)
            .await
    }

    async fn serve_file(
        &self,
        req: &RequestHeader,
        path: &Path,
        meta: &std::fs::Metadata,
        precompressed: bool,
        directed_max: usize,
    ) -> Served {
        if let Some(lines) = &self.lines {
            if let Some(known) = lines.of(path, meta).await {
                return directed(path, known, directed_max).await;
            }
        }
        let may_encode = self.precompressed && precompressed;
        // A range is of the file as it is: no sibling for it.
        let sibling = match may_encode && !req.headers.contains_key(header::RANGE) {
            true => self.sibling(req, path, meta).await,
            false => None,
        };
        let mut p = match &sibling {
            Some((file, meta, coding)) => serve_file(req, path, file, meta, Some(*coding)).await,
            None => serve_file(req, path, path, meta, None).await,
        };
        if may_encode {
            // The file itself varies by Accept-Encoding too: a shared cache
            // must not hand it to a client a sibling would have served.
            let _ = p.head.insert_header(header::VARY, "accept-encoding");
        }
        p.into()
    }

    /// The best precompressed sibling of `path` the client accepts, if one
    /// is a file inside the root. One blocking task looks for all of them:
    /// most files have none, and a task hop costs more than the lookups.
    async fn sibling(
        &self,
        req: &RequestHeader,
        path: &Path,
        file_meta: &std::fs::Metadata,
    ) -> Option<(PathBuf, std::fs::Metadata, Encoding)> {
        let codings = acceptable(&req.headers);
        if codings.is_empty() {
            return None;
        }
        let (root, path) = (self.root.clone(), path.as_os_str().to_owned());
        let file_time = file_meta.modified().ok();
        let find = move || {
            codings.into_iter().find_map(|coding| {
                let mut name = path.clone();
                name.push(coding.suffix());
                let (real, meta) = confined_now(&root, Path::new(&name))?;
                // A sibling older than the file is of an older version.
                let current = meta.modified().ok() >= file_time;
                (meta.is_file() && current).then_some((real, meta, coding))
            })
        };
        tokio::task::spawn_blocking(find).await.ok().flatten()
    }

    async fn open_target(&self, rel: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
        confined(&self.root, rel).await
    }

    async fn index_file(&self, dir: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
        for name in &self.index {
            let candidate = dir.join(name);
            if let Some(rel) = candidate
                .strip_prefix(&self.root)
                .ok()
                .map(Path::to_path_buf)
            {
                if let Some((p, m)) = self.open_target(&rel).await {
                    if m.is_file() {
                        return Some((p, m));
                    }
                }
            }
        }
        None
    }
}

/// A URL path, percent-decoded, as a path relative to a root; `None` if
/// it would climb out (`..`) or holds bytes no file name should.
pub(super) fn relative_path(url_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode_str(url_path).decode_utf8().ok()?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return None;
    }
    let mut rel = PathBuf::new();
    for part in Path::new(decoded.as_ref()).components() {
        match part {
            Component::Normal(p) => rel.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(rel)
}

/// `root`/`rel` with symlinks resolved, refused if it lands outside the
/// (canonical) root; both lookups in one blocking task.
async fn confined(root: &Path, rel: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    let (root, target) = (root.to_path_buf(), root.join(rel));
    tokio::task::spawn_blocking(move || confined_now(&root, &target))
        .await
        .ok()
        .flatten()
}

/// [`confined`], on the calling thread: `target` (under the canonical
/// `root`) with symlinks resolved, if it stays inside the root.
fn confined_now(root: &Path, target: &Path) -> Option<(PathBuf, std::fs::Metadata)> {
    let real = std::fs::canonicalize(target).ok()?;
    if !real.starts_with(root) {
        return None;
    }
    let meta = std::fs::metadata(&real).ok()?;
    Some((real, meta))
}

/// Names a file's bytes for the compressed forms kept of it: its path, tag
/// (size, modification time), inode and change time, so that a file
/// rewritten in place within one clock tick is still a new body.
fn file_identity(path: &Path, meta: &std::fs::Metadata, etag: &str) -> std::sync::Arc<str> {
    use std::os::unix::fs::MetadataExt;
    let changed = (meta.ctime(), meta.ctime_nsec());
    let id = format!("{}\n{etag}\n{}\n{changed:?}", path.display(), meta.ino());
    id.into()
}

fn etag_of(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("\"{:x}-{:x}\"", meta.len(), mtime)
}

/// A byte range request: `Ok(None)` means the whole file, `Err` a 416.
/// `http-range-header` parses and validates (RFC 9110: a suffix longer
/// than the file selects all of it, `-0` is unsatisfiable); Pingora's
/// `range_header_filter` answers `-0`, and a suffix of an empty file, with
/// an impossible 206 (see BENCHMARKS.md, crate decisions). A header that
/// does not parse is ignored, as RFC 9110 allows; several ranges get the
/// whole file, since Kavro does not build multipart bodies.
fn byte_range(req: &RequestHeader, etag: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(range) = req.headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    if let Some(if_range) = req.headers.get(header::IF_RANGE) {
        if if_range.to_str().unwrap_or("") != etag {
            return Ok(None);
        }
    }
    let Ok(parsed) = http_range_header::parse_range_header(range.trim()) else {
        return Ok(None);
    };
    if parsed.len() != 1 {
        return Ok(None);
    }
    match parsed.validate(len) {
        Ok(ranges) => Ok(ranges.first().map(|r| (*r.start(), *r.end()))),
        Err(_) => Err(()),
    }
}

fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    if mime.type_() == mime_guess::mime::TEXT {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// A file with directives, read whole without its directive line, for the
/// plugins it names to make the response: no validators (their output may
/// differ each time), no ranges, no precompressed sibling. The line is read
/// again from the bytes served, which may be newer than the line known.
async fn directed(path: &Path, known: Arc<FileDirectives>, max: usize) -> Served {
    use tokio::io::AsyncReadExt;
    let mut whole = Vec::new();
    let read = match tokio::fs::File::open(path).await {
        Ok(f) => f.take(max as u64 + 1).read_to_end(&mut whole).await,
        Err(_) => return Produced::text(404, "not found\n").into(),
    };
    if read.is_err() {
        return Produced::text(500, "cannot read the file\n").into();
    }
    if whole.len() > max {
        tracing::warn!(
            event = "directive_failed",
            file = %path.display(),
            "a file with directives is over present_max_bytes ({max}): not served"
        );
        return Produced::text(
            500,
            "500 Internal Server Error: file too large for its directives\n",
        )
        .into();
    }
    let directives = current(path, &whole, known);
    let whole = bytes::Bytes::from(whole);
    let start = directives.as_ref().map_or(0, |d| d.line_len as usize);
    let body = whole.slice(start.min(whole.len())..);
    let mut head = ResponseHeader::build(StatusCode::OK, Some(3)).expect("valid");
    let _ = head.insert_header(header::CONTENT_TYPE, content_type(path));
    let _ = head.insert_header(header::CONTENT_LENGTH, body.len().to_string());
    let produced = Produced {
        head: Box::new(head),
        body: Body::Bytes(body),
        identity: None,
    };
    Served {
        produced,
        directives,
    }
}

/// Serves `file` (with `meta`) as the representation of `path`: its
/// content type is `path`'s, and `coding` says how `file` encodes it.
async fn serve_file(
    req: &RequestHeader,
    path: &Path,
    file: &Path,
    meta: &std::fs::Metadata,
    coding: Option<Encoding>,
) -> Produced {
    let mut etag = etag_of(meta);
    if let Some(coding) = coding {
        // Its own tag even where a compressor kept the file's length and
        // time: a 304 or an If-Range never confuses the two.
        etag.insert_str(etag.len() - 1, &format!("-{}", coding.token()));
    }
    let modified = meta.modified().ok();
    let mut head = ResponseHeader::build(StatusCode::OK, Some(7)).expect("valid");
    let _ = head.insert_header(header::ETAG, etag.as_str());
    if let Some(m) = modified {
        let _ = head.insert_header(header::LAST_MODIFIED, httpdate::fmt_http_date(m));
    }
    if coding.is_none() {
        let _ = head.insert_header(header::ACCEPT_RANGES, "bytes");
    }
    // Pingora's own evaluation, as its cache uses: If-None-Match by weak
    // comparison (every listed tag, `*`), else If-Modified-Since.
    if not_modified_filter(req, &head) {
        let _ = head.set_status(StatusCode::NOT_MODIFIED);
        return Produced {
            head: Box::new(head),
            body: Body::Empty,
            identity: None,
        };
    }
    // Not on a 304: a cache merging its headers would mislabel its body.
    if let Some(coding) = coding {
        let _ = head.insert_header(header::CONTENT_ENCODING, coding.token());
    }
    let _ = head.insert_header(header::CONTENT_TYPE, content_type(path));

    let len = meta.len();
    let (start, count) = match byte_range(req, &etag, len) {
        Ok(None) => (0, len),
        Ok(Some((s, e))) => {
            let _ = head.set_status(StatusCode::PARTIAL_CONTENT);
            let _ = head.insert_header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{len}"));
            (s, e - s + 1)
        }
        Err(()) => {
            let mut p = Produced::text(416, "range not satisfiable\n");
            let _ = p
                .head
                .insert_header(header::CONTENT_RANGE, format!("bytes */{len}"));
            return p;
        }
    };
    let _ = head.insert_header(header::CONTENT_LENGTH, count.to_string());
    if req.method == Method::HEAD || count == 0 {
        return Produced {
            head: Box::new(head),
            body: Body::Empty,
            identity: None,
        };
    }
    let file = match tokio::fs::File::open(file).await {
        Ok(mut f) => {
            if start > 0 && f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
                return Produced::text(500, "cannot read the file\n");
            }
            f
        }
        Err(_) => return Produced::text(404, "not found\n"),
    };
    // The whole file, as it is on disk: its compressed forms are kept.
    let identity = (coding.is_none() && count == len).then(|| file_identity(path, meta, &etag));
    Produced {
        head: Box::new(head),
        body: Body::File { file, len: count },
        identity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> StaticRoot {
        StaticRoot {
            root: PathBuf::from("/srv"),
            index: vec![],
            strip_prefix: None,
            precompressed: false,
            lines: None,
        }
    }

    #[test]
    fn traversal_is_refused_plain_and_encoded() {
        let r = root();
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/etc/passwd",
            "/..%2fetc",
            "/a%5c..%5cb",
            "/%00",
        ] {
            assert!(r.resolve_relative(bad).is_none(), "{bad}");
        }
        assert_eq!(
            r.resolve_relative("/a/./b.txt"),
            Some(PathBuf::from("a/b.txt"))
        );
        assert_eq!(
            r.resolve_relative("/sp%20ace"),
            Some(PathBuf::from("sp ace"))
        );
    }

    #[test]
    fn ranges() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        let tag = "\"x\"";
        req.insert_header("range", "bytes=0-9").unwrap();
        assert_eq!(byte_range(&req, tag, 100), Ok(Some((0, 9))));
        req.insert_header("range", "bytes=-10").unwrap();
        assert_eq!(byte_range(&req, tag, 100), Ok(Some((90, 99))));
        req.insert_header("range", "bytes=95-").unwrap();
        assert_eq!(byte_range(&req, tag, 100), Ok(Some((95, 99))));
        req.insert_header("range", "bytes=90-200").unwrap();
        assert_eq!(byte_range(&req, tag, 100), Ok(Some((90, 99))));
        req.insert_header("range", "bytes=100-").unwrap();
        assert_eq!(byte_range(&req, tag, 100), Err(()));
        req.insert_header("range", "bytes=0-1,5-6").unwrap();
        assert_eq!(byte_range(&req, tag, 100), Ok(None));
        req.insert_header("range", "bytes=-0").unwrap();
        assert_eq!(byte_range(&req, tag, 100), Err(()));
        req.insert_header("range", "bytes=-200").unwrap();
        assert_eq!(byte_range(&req, tag, 100), Ok(Some((0, 99))));
        req.insert_header("range", "bytes=0-").unwrap();
        assert_eq!(byte_range(&req, tag, 0), Err(()));
        req.insert_header("range", "bytes=-5").unwrap();
        assert_eq!(byte_range(&req, tag, 0), Ok(None));
        req.insert_header("range", "bytes=x-y").unwrap();
        assert_eq!(byte_range(&req, tag, 100), Ok(None));
        req.insert_header("range", "bytes=0-9").unwrap();
        req.insert_header("if-range", "\"old\"").unwrap();
        assert_eq!(byte_range(&req, tag, 100), Ok(None));
    }

    #[test]
    fn conditional_requests() {
        let mut head = ResponseHeader::build(200, None).unwrap();
        head.insert_header("etag", "\"a-1\"").unwrap();
        head.insert_header("last-modified", "Wed, 02 Dec 2026 10:00:00 GMT")
            .unwrap();
        let check = |name: &str, value: &str| {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.insert_header(name.to_string(), value).unwrap();
            not_modified_filter(&req, &head)
        };
        assert!(check("if-none-match", "\"a-1\""));
        assert!(check("if-none-match", "W/\"a-1\""));
        assert!(check("if-none-match", "\"b\", \"a-1\""));
        assert!(check("if-none-match", "*"));
        assert!(!check("if-none-match", "\"b\""));
        assert!(check("if-modified-since", "Wed, 02 Dec 2026 10:00:00 GMT"));
        assert!(!check("if-modified-since", "Wed, 02 Dec 2026 09:59:59 GMT"));
    }
}
