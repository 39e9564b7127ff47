//! TLS towards an upstream's targets: the name sent and verified, the
//! roots trusted, and an optional client certificate.

use std::sync::Arc;

use pingora_core::protocols::tls::CaType;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::utils::tls::{CertKey, WrappedX509};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::tls::UpstreamTls;

/// An upstream's TLS settings, with its files read once per config.
pub struct PeerTls {
    sni: Option<String>,
    ca: Option<Arc<CaType>>,
    verify: bool,
    client: Option<Arc<CertKey>>,
    /// Pingora pools connections by address, SNI, verification and client
    /// certificate, not by the roots trusted: the roots go in the pool key
    /// here, so a connection verified against one CA never serves an
    /// upstream that trusts another.
    group_key: u64,
}

fn read_chain(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let chain: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: does not parse as PEM: {e}", path.display()))?;
    for der in &chain {
        x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("{}: a certificate does not parse: {e}", path.display()))?;
    }
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(chain)
}

impl PeerTls {
    pub fn load(s: &UpstreamTls) -> Result<PeerTls, String> {
        use std::hash::{Hash, Hasher};
        let mut group = std::collections::hash_map::DefaultHasher::new();
        let ca = match &s.ca {
            Some(path) => {
                let chain = read_chain(path)?;
                chain.hash(&mut group);
                let roots: Vec<WrappedX509> = chain
                    .into_iter()
                    .map(|der| WrappedX509::new(der, pingora_core::utils::tls::parse_x509))
                    .collect();
                Some(Arc::from(roots.into_boxed_slice()))
            }
            None => None,
        };
        let client = match &s.client {
            Some((cert, key)) => {
                let chain = read_chain(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: no usable private key: {e}", key.display()))?;
                Some(Arc::new(CertKey::new(chain, key.secret_der().to_vec())))
            }
            None => None,
        };
        Ok(PeerTls {
            sni: s.sni.clone(),
            ca,
            verify: s.verify,
            client,
            group_key: group.finish(),
        })
    }

    /// A peer for `addr`, a target whose host name is `host`.
    pub fn peer(
        &self,
        addr: pingora_core::protocols::l4::socket::SocketAddr,
        host: &str,
    ) -> HttpPeer {
        let sni = self.sni.clone().unwrap_or_else(|| host.to_string());
        let mut peer = HttpPeer::new(addr, true, sni);
        peer.options.ca = self.ca.clone();
        peer.options.verify_cert = self.verify;
        peer.options.verify_hostname = self.verify;
        peer.client_cert_key = self.client.clone();
        peer.group_key = self.group_key;
        peer
    }
}
