//! The `fastcgi` action: PHP-FPM (or any FastCGI responder) over a unix
//! socket or TCP, through the `fastcgi-client` crate.
//!
//! The host resolves the script itself: a script name that leaves the
//! document root, or a script that does not exist, is a 404 without a
//! round trip. Connections are kept alive and reused; `max_connections`
//! bounds them and `idle_timeout` closes unused ones, because PHP-FPM ties
//! one worker to each open connection.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fastcgi_client::conn::KeepAlive;
use fastcgi_client::io::TokioCompat;
use fastcgi_client::response::Content;
use fastcgi_client::{Client, Params, Request, StreamExt};
use http::{header, HeaderName, HeaderValue, StatusCode};
use parking_lot::Mutex;
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::sync::Semaphore;

use super::static_files::relative_path;
use super::{usable_dir, Body, Produced, SettingsError};

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

type Conn = Client<TokioCompat<Box<dyn Stream>>, KeepAlive>;

/// Where the FastCGI server listens.
#[derive(Debug, Clone)]
pub enum Address {
    Unix(PathBuf),
    Tcp(String),
}

impl Address {
    /// `unix:/path/to.sock`, a path starting with `/`, or `host:port`.
    pub fn parse(s: &str) -> Address {
        match s.strip_prefix("unix:") {
            Some(p) => Address::Unix(PathBuf::from(p)),
            None if s.starts_with('/') => Address::Unix(PathBuf::from(s)),
            None => Address::Tcp(s.to_string()),
        }
    }

    async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(match self {
            Address::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
            Address::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a).await?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Tcp(a) => f.write_str(a),
        }
    }
}

/// A route's FastCGI settings, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub address: Address,
    pub root: PathBuf,
    pub index: Vec<String>,
    /// Script extension; `/a.php/b` runs `/a.php` with PATH_INFO `/b`.
    pub extension: String,
    pub split_path_info: bool,
    /// Script that answers paths naming no script (`/index.php` for most frameworks).
    pub front_controller: Option<String>,
    /// Answer 404 for a missing script without asking the server.
    pub check_exists: bool,
    pub timeout: Duration,
    pub max_connections: usize,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
    /// Extra params sent with every request.
    pub params: Vec<(String, String)>,
}

pub struct FastCgi {
    s: Settings,
    idle: Arc<IdlePool>,
    /// One per request in flight; with the idle pool, bounds open connections.
    slots: Semaphore,
    sweeper: OnceLock<()>,
    /// Which file a script name resolved to, for a second: resolving walks
    /// every path component, and a busy site asks for the same few scripts.
    resolved: moka::sync::Cache<String, Option<PathBuf>>,
}

/// Kept-alive connections not in use. Each remembers the worker thread that
/// opened it: its socket is registered with that thread's reactor, so using
/// it from another thread costs a cross-thread wake-up per read.
#[derive(Default)]
struct IdlePool {
    conns: Mutex<Vec<Idle>>,
}

struct Idle {
    conn: Conn,
    thread: ThreadId,
    since: Instant,
}

impl IdlePool {
    /// An idle connection, preferring one opened on this thread.
    fn take(&self) -> Option<Conn> {
        let me = std::thread::current().id();
        let mut conns = self.conns.lock();
        let i = conns
            .iter()
            .rposition(|c| c.thread == me)
            .or_else(|| conns.len().checked_sub(1))?;
        Some(conns.swap_remove(i).conn)
    }

    fn put(&self, conn: Conn) {
        self.conns.lock().push(Idle {
            conn,
            thread: std::thread::current().id(),
            since: Instant::now(),
        });
    }

    fn close_older_than(&self, idle: Duration) {
        self.conns.lock().retain(|c| c.since.elapsed() < idle);
    }
}

impl std::fmt::Debug for FastCgi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastCgi")
            .field("address", &self.s.address)
            .field("root", &self.s.root)
            .finish()
    }
}

/// What the action needs to know about the request beyond its head.
pub struct CgiRequest<'a> {
    pub req: &'a RequestHeader,
    pub body: Bytes,
    pub host: &'a str,
    pub client: Option<SocketAddr>,
    pub server: Option<SocketAddr>,
    pub https: bool,
    pub http2: bool,
    pub request_id: &'a str,
}

/// The script a request runs.
#[derive(Debug, PartialEq, Eq)]
struct Script {
    /// URL path of the script, e.g. `/blog/index.php`.
    name: String,
    path_info: String,
    filename: PathBuf,
}

enum Failure {
    Unreachable(std::io::Error),
    Timeout,
    Protocol(String),
    TooLarge,
}

impl Settings {
    /// The settings with the document root resolved, if they are usable.
    pub fn validated(mut self) -> Result<Settings, SettingsError> {
        self.root = usable_dir("document root", &self.root)?;
        if self.max_connections == 0 {
            return Err(SettingsError::NoConnections);
        }
        Ok(self)
    }
}

impl FastCgi {
    pub fn new(s: Settings) -> Result<FastCgi, SettingsError> {
        let s = s.validated()?;
        let slots = Semaphore::new(s.max_connections);
        Ok(FastCgi {
            s,
            idle: Arc::default(),
            slots,
            sweeper: OnceLock::new(),
            resolved: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(1))
                .build(),
        })
    }

    /// The largest request body accepted, for the pipeline to enforce while reading.
    pub fn max_request_bytes(&self) -> usize {
        self.s.max_request_bytes
    }

    /// Maps the URL path to a script under the root, or `None` for a 404.
    fn script(&self, url_path: &str) -> Option<Script> {
        let decoded = percent_encoding::percent_decode_str(url_path)
            .decode_utf8()
            .ok()?;
        let ext = self.s.extension.as_str();
        let (mut name, path_info) = match decoded.find(&format!("{ext}/")) {
            Some(i) if self.s.split_path_info => {
                let end = i + ext.len();
                (decoded[..end].to_string(), decoded[end..].to_string())
            }
            _ => (decoded.to_string(), String::new()),
        };
        if name.ends_with('/') {
            let dir = name.clone();
            for index in &self.s.index {
                let candidate = format!("{dir}{index}");
                if !self.s.check_exists || self.existing(&candidate).is_some() {
                    name = candidate;
                    break;
                }
            }
        }
        let found = if !name.ends_with(ext) {
            None
        } else if self.s.check_exists {
            self.existing(&name)
        } else {
            decoded_relative(&name).map(|rel| self.s.root.join(rel))
        };
        let Some(filename) = found else {
            let front = self.s.front_controller.as_ref()?;
            let filename = self.existing(front)?;
            return Some(Script {
                name: front.clone(),
                path_info: String::new(),
                filename,
            });
        };
        Some(Script {
            name,
            path_info,
            filename,
        })
    }

    /// The file `name` (a decoded URL path) names under the root, if it
    /// exists there. Synchronous: a few cached metadata syscalls cost less
    /// than handing them to the blocking pool.
    fn existing(&self, name: &str) -> Option<PathBuf> {
        if let Some(found) = self.resolved.get(name) {
            return found;
        }
        let found = (|| {
            let real = std::fs::canonicalize(self.s.root.join(decoded_relative(name)?)).ok()?;
            let meta = std::fs::metadata(&real).ok()?;
            (real.starts_with(&self.s.root) && meta.is_file()).then_some(real)
        })();
        self.resolved.insert(name.to_string(), found.clone());
        found
    }

    fn params<'a>(&'a self, r: &'a CgiRequest<'a>, script: &'a Script) -> Params<'a> {
        let req = r.req;
        let uri = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut p = Params::default();
        // The CGI variables below and one per request header, without regrowth.
        p.reserve(24 + req.headers.keys_len() + self.s.params.len());
        let mut p = p
            .gateway_interface("CGI/1.1")
            .server_software(concat!("kavro/", env!("CARGO_PKG_VERSION")))
            .server_protocol(if r.http2 { "HTTP/2.0" } else { "HTTP/1.1" })
            .request_method(req.method.as_str())
            .script_filename(script.filename.to_string_lossy())
            .script_name(script.name.as_str())
            .query_string(req.uri.query().unwrap_or(""))
            .request_uri(uri)
            .document_uri(script.name.as_str())
            .document_root(self.s.root.to_string_lossy())
            .server_name(r.host)
            .custom("PATH_INFO", script.path_info.as_str())
            .custom("REDIRECT_STATUS", "200")
            .custom("REQUEST_ID", r.request_id);
        if !script.path_info.is_empty() {
            let translated = self.s.root.join(script.path_info.trim_start_matches('/'));
            p = p.custom("PATH_TRANSLATED", translated.to_string_lossy().into_owned());
        }
        if let Some(c) = r.client {
            p = p.remote_addr(c.ip().to_string()).remote_port(c.port());
        }
        if let Some(s) = r.server {
            p = p.server_addr(s.ip().to_string()).server_port(s.port());
        }
        if r.https {
            p = p.custom("HTTPS", "on");
        }
        if let Some(ct) = req.headers.get(header::CONTENT_TYPE) {
            p = p.content_type(String::from_utf8_lossy(ct.as_bytes()).into_owned());
        }
        if !r.body.is_empty() || req.headers.contains_key(header::CONTENT_LENGTH) {
            p = p.content_length(r.body.len());
        }
        for name in req.headers.keys() {
            // Content-* travel as CONTENT_*; `Proxy` would become HTTP_PROXY,
            // which many HTTP clients obey (httpoxy).
            if name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH || name == "proxy" {
                continue;
            }
            let mut values = req.headers.get_all(name).iter();
            let first = values.next().map(|v| String::from_utf8_lossy(v.as_bytes()));
            let value = match values.next() {
                // One value, as nearly always: borrowed, not copied.
                None => first.unwrap_or_default(),
                Some(second) => {
                    let sep = if name == header::COOKIE { "; " } else { ", " };
                    let rest = std::iter::once(second).chain(values);
                    first
                        .into_iter()
                        .chain(rest.map(|v| String::from_utf8_lossy(v.as_bytes())))
                        .collect::<Vec<_>>()
                        .join(sep)
                        .into()
                }
            };
            let mut key = String::with_capacity(5 + name.as_str().len());
            key.push_str("HTTP_");
            key.extend(name.as_str().chars().map(|c| match c {
                '-' => '_',
                c => c.to_ascii_uppercase(),
            }));
            p = p.custom(key, value);
        }
        for (k, v) in &self.s.params {
            p = p.custom(k.as_str(), v.as_str());
        }
        p
    }

    pub async fn serve(&self, r: CgiRequest<'_>) -> Produced {
        let Some(script) = self.script(r.req.uri.path()) else {
            return Produced::text(404, "not found\n");
        };
        let out = tokio::time::timeout(self.s.timeout, self.run(&r, &script)).await;
        let (stdout, stderr) = match out {
            Err(_) => return self.failed(&r, Failure::Timeout),
            Ok(Err(f)) => return self.failed(&r, f),
            Ok(Ok(o)) => o,
        };
        if !stderr.is_empty() {
            for line in String::from_utf8_lossy(&stderr).lines() {
                tracing::warn!(
                    target: "kavro::fastcgi",
                    request = r.request_id,
                    script = %script.name,
                    "{line}"
                );
            }
        }
        match parse_response(stdout) {
            Some(p) => p,
            None => self.failed(
                &r,
                Failure::Protocol("the response has no valid CGI header block".into()),
            ),
        }
    }

    /// Sends the request on a pooled (or new) connection; a pooled one
    /// that turns out closed is replaced once.
    async fn run(&self, r: &CgiRequest<'_>, script: &Script) -> Result<(Bytes, Bytes), Failure> {
        self.start_sweeper();
        let _slot = self.slots.acquire().await.expect("never closed");
        let pooled = self.idle.take();
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect().await?,
        };
        match self.exchange(&mut conn, r, script).await {
            Ok(out) => {
                self.idle.put(conn);
                Ok(out)
            }
            Err(Failure::Unreachable(_)) if reused => {
                let mut conn = self.connect().await?;
                let out = self.exchange(&mut conn, r, script).await?;
                self.idle.put(conn);
                Ok(out)
            }
            Err(f) => Err(f),
        }
    }

    /// Closes connections idle past `idle_timeout`, so that idle ones do not
    /// hold PHP-FPM workers another client needs. It ends with this route.
    fn start_sweeper(&self) {
        self.sweeper.get_or_init(|| {
            let pool = Arc::downgrade(&self.idle);
            let every = self.s.idle_timeout;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every / 2).await;
                    match pool.upgrade() {
                        Some(p) => p.close_older_than(every),
                        None => return,
                    }
                }
            });
        });
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let stream = self
            .s
            .address
            .connect()
            .await
            .map_err(Failure::Unreachable)?;
        // The client writes each record header and param separately and
        // flushes at the end of the request: buffer them into a few writes.
        let buffered: Box<dyn Stream> =
            Box::new(tokio::io::BufWriter::with_capacity(16 * 1024, stream));
        Ok(Client::new_keep_alive_tokio(buffered))
    }

    async fn exchange(
        &self,
        conn: &mut Conn,
        r: &CgiRequest<'_>,
        script: &Script,
    ) -> Result<(Bytes, Bytes), Failure> {
        let body = fastcgi_client::io::Cursor::new(r.body.clone());
        let request = Request::new(self.params(r, script), body);
        let mut stream = conn.execute_stream(request).await.map_err(io_failure)?;
        let (mut stdout, mut stderr) = (BytesMut::new(), BytesMut::new());
        let mut got_any = false;
        while let Some(content) = stream.next().await {
            match content {
                Ok(Content::Stdout(b)) => {
                    got_any = true;
                    if stdout.len() + b.len() > self.s.max_response_bytes {
                        return Err(Failure::TooLarge);
                    }
                    stdout.extend_from_slice(&b);
                }
                Ok(Content::Stderr(b)) => {
                    got_any = true;
                    if stderr.len() < 64 * 1024 {
                        stderr.extend_from_slice(&b);
                    }
                }
                // Once output has arrived the script ran: never retry it.
                Err(e) if got_any => return Err(Failure::Protocol(e.to_string())),
                Err(e) => return Err(io_failure(e)),
            }
        }
        Ok((stdout.freeze(), stderr.freeze()))
    }

    fn failed(&self, r: &CgiRequest<'_>, f: Failure) -> Produced {
        let addr = &self.s.address;
        let (status, what) = match f {
            Failure::Timeout => (504, format!("FastCGI server {addr} did not answer in time")),
            Failure::Unreachable(e) => (
                502,
                format!("FastCGI server {addr} could not be reached: {e}"),
            ),
            Failure::Protocol(e) => (
                502,
                format!("FastCGI server {addr} sent a bad response: {e}"),
            ),
            Failure::TooLarge => (
                502,
                format!(
                    "FastCGI server {addr} sent more than {} bytes",
                    self.s.max_response_bytes
                ),
            ),
        };
        tracing::warn!(request = r.request_id, "{what}");
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        Produced::text(status, format!("{status} {reason}: {what}\n"))
    }
}

/// A decoded URL path as a path under the root (escaping `%` so that
/// nothing is decoded twice).
fn decoded_relative(name: &str) -> Option<PathBuf> {
    relative_path(&name.replace('%', "%25"))
}

fn io_failure(e: fastcgi_client::ClientError) -> Failure {
    match e {
        fastcgi_client::ClientError::Io(e) => Failure::Unreachable(e),
        other => Failure::Protocol(other.to_string()),
    }
}

/// Turns CGI output (header lines, a blank line, the body) into a response.
fn parse_response(stdout: Bytes) -> Option<Produced> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let (offset, parsed) = match httparse::parse_headers(&stdout, &mut headers).ok()? {
        httparse::Status::Complete(c) => c,
        httparse::Status::Partial => return None,
    };
    let mut status = None;
    let mut has_location = false;
    let mut list: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(parsed.len());
    for h in parsed {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        if name == "status" {
            let code = std::str::from_utf8(h.value).ok()?.trim().get(..3)?;
            status = Some(StatusCode::from_bytes(code.as_bytes()).ok()?);
            continue;
        }
        // Framing and connection headers are the host's to set.
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        has_location |= name == header::LOCATION;
        list.push((name, HeaderValue::from_bytes(h.value).ok()?));
    }
    let status = status.unwrap_or(if has_location {
        StatusCode::FOUND
    } else {
        StatusCode::OK
    });
    let body = stdout.slice(offset..);
    let mut head = ResponseHeader::build(status, Some(list.len() + 1)).ok()?;
    for (k, v) in list {
        let _ = head.append_header(k, v);
    }
    let _ = head.insert_header(header::CONTENT_LENGTH, body.len().to_string());
    Some(Produced {
        head: Box::new(head),
        body: Body::Bytes(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_to_response() {
        let out = Bytes::from_static(
            b"Status: 404 Not Found\r\nContent-type: text/html\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n<p>gone</p>",
        );
        let p = parse_response(out).unwrap();
        assert_eq!(p.head.status, 404);
        assert_eq!(p.head.headers.get_all("set-cookie").iter().count(), 2);
        assert_eq!(p.head.headers["content-length"], "11");
        let p = parse_response(Bytes::from_static(b"Location: /next\n\n")).unwrap();
        assert_eq!(p.head.status, 302);
        assert!(parse_response(Bytes::from_static(b"no header block")).is_none());
    }

    #[test]
    fn request_headers_become_http_params() {
        let dir = std::env::temp_dir().join(format!("kavro-fcgi-params-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = FastCgi::new(settings(dir.clone())).unwrap();
        let mut req = RequestHeader::build("GET", b"/a.php?q=1", None).unwrap();
        req.append_header("cookie", "a=1").unwrap();
        req.append_header("cookie", "b=2").unwrap();
        req.append_header("x-multi", "one").unwrap();
        req.append_header("x-multi", "two").unwrap();
        req.append_header("x-single-value", "only").unwrap();
        req.append_header("proxy", "http://evil").unwrap();
        let r = CgiRequest {
            req: &req,
            body: Bytes::new(),
            host: "example.test",
            client: None,
            server: None,
            https: false,
            http2: false,
            request_id: "id",
        };
        let script = Script {
            name: "/a.php".into(),
            path_info: String::new(),
            filename: dir.join("a.php"),
        };
        let p = f.params(&r, &script);
        let get = |k: &str| p.get(k).map(|v| v.to_string());
        assert_eq!(get("HTTP_COOKIE").as_deref(), Some("a=1; b=2"));
        assert_eq!(get("HTTP_X_MULTI").as_deref(), Some("one, two"));
        assert_eq!(get("HTTP_X_SINGLE_VALUE").as_deref(), Some("only"));
        assert_eq!(get("HTTP_PROXY"), None);
        assert_eq!(get("QUERY_STRING").as_deref(), Some("q=1"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn settings(root: PathBuf) -> Settings {
        Settings {
            address: Address::parse("/nowhere.sock"),
            root,
            index: vec!["index.php".into()],
            extension: ".php".into(),
            split_path_info: true,
            front_controller: None,
            check_exists: true,
            timeout: Duration::from_secs(1),
            max_connections: 1,
            idle_timeout: Duration::from_secs(1),
            max_request_bytes: 1 << 20,
            max_response_bytes: 1 << 20,
            params: vec![],
        }
    }

    #[test]
    fn script_resolution_stays_in_the_root() {
        let dir = std::env::temp_dir().join(format!("kavro-fcgi-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("blog")).unwrap();
        std::fs::write(dir.join("index.php"), "").unwrap();
        std::fs::write(dir.join("blog/post.php"), "").unwrap();
        let f = FastCgi::new(settings(dir.clone())).unwrap();
        let s = f.script("/blog/post.php/a/b").unwrap();
        assert_eq!(
            (s.name.as_str(), s.path_info.as_str()),
            ("/blog/post.php", "/a/b")
        );
        assert_eq!(f.script("/").unwrap().name, "/index.php");
        assert!(f.script("/missing.php").is_none());
        assert!(f.script("/../etc/passwd.php").is_none());
        assert!(f.script("/%2e%2e/x.php").is_none());
        assert!(f.script("/style.css").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
