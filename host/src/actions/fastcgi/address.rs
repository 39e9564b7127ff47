//! Where the FastCGI server listens, and opening a stream to it.

use std::path::PathBuf;

pub(super) trait Stream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

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

    pub(super) async fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
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
