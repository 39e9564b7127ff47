//! The script's CGI output as an HTTP response, and what a client sees when
//! the FastCGI server fails.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, StatusCode};
use pingora_http::ResponseHeader;

use super::super::{Body, Produced};
use super::{CgiRequest, FastCgi};
use crate::upstream::admission::Refused;

pub(super) enum Failure {
    Unreachable(std::io::Error),
    Timeout,
    Protocol(String),
    TooLarge,
    /// Every connection is in use and the queue refused the request.
    Busy(Refused),
}

pub(super) fn io_failure(e: fastcgi_client::ClientError) -> Failure {
    match e {
        fastcgi_client::ClientError::Io(e) => Failure::Unreachable(e),
        other => Failure::Protocol(other.to_string()),
    }
}

impl FastCgi {
    pub(super) fn failed(&self, r: &CgiRequest<'_>, f: Failure) -> Produced {
        let addr = &self.s.address;
        let retry_after = matches!(f, Failure::Busy(_));
        let (status, what) = match f {
            Failure::Busy(Refused::QueueFull) => (
                503,
                format!("FastCGI server {addr}: every connection is in use and the queue is full"),
            ),
            Failure::Busy(Refused::QueueTimeout) => (
                503,
                format!("FastCGI server {addr}: every connection stayed in use for the whole wait"),
            ),
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
        let mut p = Produced::text(status, format!("{status} {reason}: {what}\n"));
        if retry_after {
            // A queue drains within its timeout, or sheds again.
            p.retry_after(self.s.queue_timeout);
        }
        p
    }
}

/// Turns CGI output (header lines, a blank line, the body) into a response.
pub fn parse_response(stdout: Bytes) -> Option<Produced> {
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
            // A final status: to Pingora and the client a 1xx head is
            // informational (a response would still be due), and a 101
            // would switch the connection's protocol.
            let code = StatusCode::from_bytes(code.as_bytes()).ok()?;
            if code.is_informational() {
                return None;
            }
            status = Some(code);
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
        identity: None,
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

    /// Found by the `fastcgi_response` fuzz target: a script's 1xx status
    /// became the response's, which a client takes for an interim answer
    /// (101: a protocol switch). It is a bad response (502).
    #[test]
    fn informational_status_is_refused() {
        for out in [
            &b"Status: 199\nContent-Length: 2: -Co 546\nContent-raonc: 0uus\n\nok"[..],
            b"Status: 100 Continue\r\n\r\n",
            b"Status: 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        ] {
            assert!(parse_response(Bytes::copy_from_slice(out)).is_none());
        }
        let p = parse_response(Bytes::from_static(b"Status: 204\r\n\r\n")).unwrap();
        assert_eq!(p.head.status, 204);
    }
}
