//! Built-in route actions: native, no sandbox crossing.

pub mod fastcgi;
pub mod proxy;
pub mod respond;
pub mod static_files;

use bytes::Bytes;
use pingora_http::ResponseHeader;

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
}

impl Produced {
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
        }
    }
}
