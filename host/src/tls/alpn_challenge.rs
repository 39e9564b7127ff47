//! The TLS-ALPN-01 challenge (RFC 8737): the CA connects with ALPN
//! `acme-tls/1` alone and expects a certificate made for the challenge.
//! Pingora's listeners offer h2 and http/1.1, and rustls refuses a client
//! that offers neither, so the ClientHello is read ahead of Pingora's
//! handshake: a challenge connection is answered here and closed, and any
//! other goes on to Pingora with the bytes put back.

use std::sync::Arc;
use std::time::Duration;

use pingora_core::listeners::PreTlsProcess;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::{Error, ErrorType, Result};
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::acme::Acme;

const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// A ClientHello is far smaller; past this it is not one.
const MAX_HELLO: usize = 16 * 1024;
/// How long a client may take to send its ClientHello.
const HELLO_WAIT: Duration = Duration::from_secs(10);

pub struct AlpnChallenge {
    pub acme: Arc<Acme>,
}

/// The challenge certificate, whatever is asked: rustls' own SNI resolver
/// checks certificates with webpki, which refuses the critical
/// acmeIdentifier extension.
#[derive(Debug)]
struct ChallengeCert(Arc<CertifiedKey>);

impl ResolvesServerCert for ChallengeCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// What the ClientHello asks for.
enum Hello {
    /// ALPN `acme-tls/1` only, for this name.
    Challenge(String),
    Other,
}

/// Reads until a whole ClientHello is in `buf` (or it cannot be one).
async fn read_hello(stream: &mut L4Stream, buf: &mut Vec<u8>) -> Hello {
    let mut acceptor = Acceptor::default();
    let mut chunk = [0u8; 4096];
    while buf.len() < MAX_HELLO {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Hello::Other,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if acceptor.read_tls(&mut &chunk[..n]).is_err() {
            return Hello::Other;
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let hello = accepted.client_hello();
                // At least one protocol offered, and all of them acme-tls/1.
                let mut offered = hello.alpn().into_iter().flatten();
                let only_acme =
                    offered.next() == Some(ACME_TLS_ALPN) && offered.all(|p| p == ACME_TLS_ALPN);
                return match (only_acme, hello.server_name()) {
                    (true, Some(name)) => Hello::Challenge(name.to_ascii_lowercase()),
                    _ => Hello::Other,
                };
            }
            Ok(None) => continue,
            Err(_) => return Hello::Other,
        }
    }
    Hello::Other
}

#[async_trait::async_trait]
impl PreTlsProcess for AlpnChallenge {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let mut buf = Vec::new();
        let hello = tokio::time::timeout(HELLO_WAIT, read_hello(stream, &mut buf)).await;
        stream.rewind(&buf);
        let name = match hello {
            Ok(Hello::Challenge(name)) => name,
            // A client that sent no ClientHello in time, or garbage: Pingora's
            // handshake reads what came and fails it as it would have.
            _ => return Ok(()),
        };
        let Some(cert) = self.acme.alpn_cert(&name) else {
            return Error::e_explain(
                ErrorType::TLSHandshakeFailure,
                format!("acme-tls/1 for `{name}`, which is not under validation"),
            );
        };
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(ChallengeCert(cert)));
        config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        match tokio::time::timeout(HELLO_WAIT, acceptor.accept(&mut *stream)).await {
            Ok(Ok(mut tls)) => {
                let _ = tls.shutdown().await;
                tracing::info!(domain = %name, "ACME: answered a TLS-ALPN-01 validation");
            }
            Ok(Err(e)) => tracing::warn!(domain = %name, "ACME: TLS-ALPN-01 handshake failed: {e}"),
            Err(_) => tracing::warn!(domain = %name, "ACME: TLS-ALPN-01 handshake timed out"),
        }
        // The connection has served its purpose; Pingora drops it.
        Error::e_explain(
            ErrorType::TLSHandshakeFailure,
            "ACME TLS-ALPN-01 validation answered",
        )
    }
}
