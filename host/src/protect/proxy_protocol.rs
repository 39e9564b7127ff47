//! The PROXY protocol (v1 text, v2 binary) on the listeners that declare
//! it (`proxy_protocol = true`): a load balancer in front says, before
//! anything else on the connection, whom it is from. That source becomes
//! the connection's peer, so the client address that the connection
//! limit, `trusted_proxies`, routes, plugins, FastCGI and the logs see is
//! the real client's. A connection without a valid header is closed.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora_core::listeners::PreTlsProcess;
use pingora_core::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::GetSocketDigest;
use pingora_core::protocols::SocketDigest;
use pingora_core::{Error, ErrorType, Result};
use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;

use crate::tls::alpn_challenge::AlpnChallenge;
use crate::Active;

const V1_SIGNATURE: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v2 header's 16 fixed bytes and the most its length field can add.
const MAX_HEADER: usize = 16 + u16::MAX as usize;

/// What Kavro reads of a connection before its first byte of HTTP or TLS.
pub struct PreHandshake {
    pub active: Arc<ArcSwap<Active>>,
    /// Listeners whose connections start with a PROXY header.
    pub proxied: Vec<SocketAddr>,
    /// TLS listeners, with the TLS-ALPN-01 challenge answered on them
    /// while ACME is on.
    pub challenge: Option<(Vec<SocketAddr>, AlpnChallenge)>,
}

#[async_trait::async_trait]
impl PreTlsProcess for PreHandshake {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let digest = stream.get_socket_digest();
        let Some(local) = digest
            .as_ref()
            .and_then(|d| d.local_addr())
            .and_then(|a| a.as_inet())
            .copied()
        else {
            return Ok(());
        };
        if crate::config::listens_on(&self.proxied, local) {
            let peer = digest
                .as_ref()
                .and_then(|d| d.peer_addr())
                .and_then(|a| a.as_inet())
                .copied();
            self.take_header(stream, local, peer).await?;
        }
        match &self.challenge {
            Some((tls, challenge)) if crate::config::listens_on(tls, local) => {
                challenge.process(stream).await
            }
            _ => Ok(()),
        }
    }
}

impl PreHandshake {
    /// Reads the header within the head timeout and makes its source the
    /// connection's peer; an error closes the connection.
    async fn take_header(
        &self,
        stream: &mut L4Stream,
        local: SocketAddr,
        peer: Option<SocketAddr>,
    ) -> Result<()> {
        let (wait, trusted) = {
            let active = self.active.load();
            let c = &active.config;
            (c.client.header_timeout, c.trusted_proxies.clone())
        };
        let refused = |reason: String| {
            let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
            tracing::info!(
                event = "connection_refused",
                client = %peer,
                listener = %local,
                "connection closed: {reason}"
            );
            Error::e_explain(ErrorType::InvalidHTTPHeader, reason)
        };
        if !trusted.is_empty() && !peer.is_some_and(|p| trusted.trusts(p.ip())) {
            return refused(
                "a PROXY header from a peer outside server.trusted_proxies is not believed".into(),
            );
        }
        let source = match tokio::time::timeout(wait, read_header(stream)).await {
            Ok(Ok(source)) => source,
            Ok(Err(reason)) => return refused(reason),
            Err(_) => {
                return refused(format!(
                    "no PROXY header within {} ms (server.header_timeout_ms); \
                     this listener expects one first (proxy_protocol = true)",
                    wait.as_millis()
                ))
            }
        };
        let Some(source) = source else {
            // The balancer's own connection (a health check): its peer stays.
            return Ok(());
        };
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
            let _ = digest.peer_addr.set(Some(PeerAddr::Inet(source)));
            stream.set_socket_digest(digest);
        }
        Ok(())
    }
}

/// Reads a PROXY header off `stream` and puts back what came after it.
/// `None`: the header names no client (v1 `UNKNOWN`, v2 `LOCAL`, a Unix
/// socket).
async fn read_header(stream: &mut L4Stream) -> std::result::Result<Option<SocketAddr>, String> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the PROXY header failed: {e}"))?;
        if n == 0 {
            return Err("the connection closed before its PROXY header ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((len, source)) = parse(&buf)? {
            stream.rewind(&buf[len..]);
            return Ok(source);
        }
    }
}

/// A header at the start of `buf`: its length and the client it names.
/// `Ok(None)`: not all of it yet.
type Parsed = Option<(usize, Option<SocketAddr>)>;

fn parse(buf: &[u8]) -> std::result::Result<Parsed, String> {
    let invalid = |e: &dyn std::fmt::Display| {
        format!(
            "this listener expects a PROXY protocol header first (proxy_protocol = true), \
             and the connection did not start with one: {e}"
        )
    };
    let starts = |signature: &[u8]| {
        let n = buf.len().min(signature.len());
        buf[..n] == signature[..n]
    };
    let text = starts(V1_SIGNATURE);
    if !text && !starts(V2_SIGNATURE) {
        return Err(invalid(&"no PROXY signature"));
    }
    let header = HeaderResult::parse(buf);
    if header.is_incomplete() {
        // A text header ends at its first line end, whatever the parser
        // makes of what it holds.
        if text && buf.contains(&b'\n') {
            return Err(invalid(&"a malformed v1 header"));
        }
        return if buf.len() < MAX_HEADER {
            Ok(None)
        } else {
            Err("the PROXY header is longer than the protocol allows".into())
        };
    }
    match header {
        HeaderResult::V1(Ok(h)) => {
            let source = match h.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            };
            Ok(Some((h.header.len(), source)))
        }
        HeaderResult::V2(Ok(h)) => {
            let source = match (h.command, h.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            Ok(Some((h.len(), source)))
        }
        HeaderResult::V1(Err(e)) => Err(invalid(&e)),
        HeaderResult::V2(Err(e)) => Err(invalid(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_ipv4(command: u8) -> Vec<u8> {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.extend_from_slice(&[0x20 | command, 0x11, 0, 12]);
        h.extend_from_slice(&[203, 0, 113, 7, 10, 0, 0, 1]);
        h.extend_from_slice(&[0x1f, 0x90, 0x00, 0x50]);
        h
    }

    #[test]
    fn a_v1_header_names_the_client_and_leaves_the_request() {
        let buf = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\nGET / HTTP/1.1\r\n";
        let (len, source) = parse(buf).unwrap().unwrap();
        assert_eq!(&buf[len..], b"GET / HTTP/1.1\r\n");
        assert_eq!(source, Some("203.0.113.7:51000".parse().unwrap()));
        let buf = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n";
        let (_, source) = parse(buf).unwrap().unwrap();
        assert_eq!(source, Some("[2001:db8::7]:51000".parse().unwrap()));
        let (len, source) = parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
        assert_eq!((len, source), (15, None));
    }

    #[test]
    fn a_v2_header_names_the_client_unless_local() {
        let mut buf = v2_ipv4(1);
        let len = buf.len();
        buf.extend_from_slice(b"GET /");
        let (n, source) = parse(&buf).unwrap().unwrap();
        assert_eq!(n, len);
        assert_eq!(source, Some("203.0.113.7:8080".parse().unwrap()));
        let (_, source) = parse(&v2_ipv4(0)).unwrap().unwrap();
        assert_eq!(source, None, "LOCAL: the balancer's own connection");
    }

    #[test]
    fn a_header_cut_short_waits_for_more() {
        assert_eq!(parse(b"PROXY TCP4 203.0"), Ok(None));
        assert_eq!(parse(&v2_ipv4(1)[..20]), Ok(None));
        assert_eq!(parse(b"PRO"), Ok(None));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"PROXY TCP4 nonsense\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("proxy_protocol = true"), "{e}");
        }
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert!(parse(long.as_bytes()).is_err());
    }
}
