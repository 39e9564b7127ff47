//! The `fastcgi` action: PHP-FPM (or any FastCGI responder) over a unix
//! socket or TCP, through the `fastcgi-client` crate.
//!
//! The host resolves the script itself ([`script`]): a script name that
//! leaves the document root, or a script that does not exist, is a 404
//! without a round trip. Connections are kept alive and reused ([`pool`]);
//! `max_connections` bounds them and `idle_timeout` closes unused ones,
//! because PHP-FPM ties one worker to each open connection.

mod address;
mod params;
mod pool;
mod response;
mod script;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fastcgi_client::response::Content;
use fastcgi_client::{Request, StreamExt};
use pingora_http::RequestHeader;

use super::{usable_dir, Produced, SettingsError};
use crate::config::Admission;
pub use address::Address;
pub use pool::IdlePool;
use pool::{Conn, Pool};
#[doc(hidden)]
pub use response::parse_response;
use response::{io_failure, Failure};
use script::Script;

/// A route's FastCGI settings, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub address: Address,
    pub root: PathBuf,
    /// `root` as the FastCGI server sees it, when that differs.
    pub script_root: Option<PathBuf>,
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
    /// Requests that may wait for a connection, and for how long.
    pub max_queue: u32,
    pub queue_timeout: Duration,
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
    /// Extra params sent with every request.
    pub params: Vec<(String, String)>,
}

pub struct FastCgi {
    s: Settings,
    pool: Pool,
    /// Which file a script name resolved to, for a second: resolving walks
    /// every path component, and a busy site asks for the same few scripts.
    resolved: moka::sync::Cache<String, Option<PathBuf>>,
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

impl Settings {
    /// The settings with the document root resolved, if they are usable.
    pub fn validated(mut self) -> Result<Settings, SettingsError> {
        self.root = usable_dir("document root", &self.root)?;
        if self.max_connections == 0 {
            return Err(SettingsError::NoConnections);
        }
        if self.queue_timeout.is_zero() {
            return Err(SettingsError::NoWait);
        }
        Ok(self)
    }
}

impl FastCgi {
    /// The action and its connection pool, for settings that
    /// [`Settings::validated`] returned.
    pub fn new(s: Settings) -> FastCgi {
        let pool = Pool::new(
            Admission {
                max_inflight: s.max_connections as u32,
                max_queue: s.max_queue,
                queue_timeout: s.queue_timeout,
            },
            s.idle_timeout,
        );
        FastCgi {
            s,
            pool,
            resolved: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(1))
                .build(),
        }
    }

    /// The largest request body accepted, for the pipeline to enforce while reading.
    pub fn max_request_bytes(&self) -> usize {
        self.s.max_request_bytes
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
        let _slot = self.pool.slot().await.map_err(Failure::Busy)?;
        let pooled = self.pool.take();
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect().await?,
        };
        match self.exchange(&mut conn, r, script).await {
            Ok(out) => {
                self.pool.put(conn);
                Ok(out)
            }
            Err(Failure::Unreachable(_)) if reused => {
                let mut conn = self.connect().await?;
                let out = self.exchange(&mut conn, r, script).await?;
                self.pool.put(conn);
                Ok(out)
            }
            Err(f) => Err(f),
        }
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        pool::connect(&self.s.address)
            .await
            .map_err(Failure::Unreachable)
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
}

/// Settings for the unit tests: a root, and a server that is never asked.
#[cfg(test)]
fn test_settings(root: PathBuf) -> Settings {
    Settings {
        address: Address::parse("/nowhere.sock"),
        root,
        script_root: None,
        index: vec!["index.php".into()],
        extension: ".php".into(),
        split_path_info: true,
        front_controller: None,
        check_exists: true,
        timeout: Duration::from_secs(1),
        max_connections: 1,
        idle_timeout: Duration::from_secs(1),
        max_queue: 10,
        queue_timeout: Duration::from_secs(1),
        max_request_bytes: 1 << 20,
        max_response_bytes: 1 << 20,
        params: vec![],
    }
}
