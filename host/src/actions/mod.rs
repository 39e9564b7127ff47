//! Built-in route actions: native, no sandbox crossing.

pub mod directives;
pub mod fastcgi;
pub mod proxy;
pub mod respond;
pub mod static_files;

use std::path::PathBuf;

use bytes::Bytes;
use pingora_http::ResponseHeader;

/// A route action's settings that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{what} `{}` is not usable: {source}", path.display())]
    Unusable {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} `{}` is not a directory", path.display())]
    NotADirectory { what: &'static str, path: PathBuf },
    #[error("invalid status {0}")]
    Status(u16),
    #[error("{0} is not a redirect status")]
    NotARedirect(u16),
    #[error("invalid header name `{0}`")]
    HeaderName(String),
    #[error("invalid value for header `{0}`")]
    HeaderValue(String),
    #[error("max_connections must be at least 1")]
    NoConnections,
    #[error("queue_timeout_ms must be at least 1; max_queue = 0 sheds at once instead")]
    NoWait,
}

/// `path`, made absolute, if it is a directory that can be read.
pub fn usable_dir(what: &'static str, path: &std::path::Path) -> Result<PathBuf, SettingsError> {
    let dir = std::fs::canonicalize(path).map_err(|source| SettingsError::Unusable {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    if !dir.is_dir() {
        return Err(SettingsError::NotADirectory { what, path: dir });
    }
    Ok(dir)
}

/// A response body produced natively.
pub enum Body {
    Empty,
    Bytes(Bytes),
    /// `len` bytes from the file's current position.
    File {
        file: tokio::fs::File,
        len: u64,
    },
}

/// A response the host produces itself (not proxied).
pub struct Produced {
    /// Boxed: Pingora takes the head boxed, and a `Produced` moves through
    /// several result types on its way out.
    pub head: Box<ResponseHeader>,
    pub body: Body,
    /// Names the body for the compressed forms Kavro keeps of it: the same
    /// identity, the same bytes. `None`: compressed for each response.
    pub identity: Option<std::sync::Arc<str>>,
}

impl Produced {
    /// Tells the client when to come back: whole seconds, rounded up, so a
    /// client that waits that long finds what it waited for.
    pub fn retry_after(&mut self, wait: std::time::Duration) {
        let secs = wait.as_millis().div_ceil(1000).max(1);
        let _ = self
            .head
            .insert_header(http::header::RETRY_AFTER, secs.to_string());
    }

    /// A response with a short text body.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Produced {
        let body = body.into();
        // A status that HTTP cannot carry becomes a 500 rather than a panic.
        let mut head = ResponseHeader::build(status, Some(3))
            .or_else(|_| ResponseHeader::build(500, Some(3)))
            .expect("500 is a valid status");
        let _ = head.insert_header("content-type", "text/plain; charset=utf-8");
        let _ = head.insert_header("content-length", body.len().to_string());
        Produced {
            head: Box::new(head),
            body: Body::Bytes(body),
            identity: None,
        }
    }
}
