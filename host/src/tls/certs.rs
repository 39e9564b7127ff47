//! Certificates: read from PEM, checked (the chain parses, the key matches
//! the leaf, the leaf has not expired), and looked up by server name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Where a certificate served comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Acme,
    /// Self-signed, while ACME has not issued one yet.
    Placeholder,
}

impl Source {
    pub fn label(&self) -> &'static str {
        match self {
            Source::File(_) => "file",
            Source::Acme => "acme",
            Source::Placeholder => "placeholder",
        }
    }
}

/// A checked certificate chain with its key, ready for handshakes.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// The names it answers, lowercase; `*.example.com` for a wildcard.
    pub names: Vec<String>,
    pub key: Arc<CertifiedKey>,
    pub not_after: SystemTime,
    pub source: Source,
}

impl Certificate {
    /// Parses and checks a PEM chain (leaf first) and its key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8], source: Source) -> Result<Self, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the certificate chain does not parse: {e}"))?;
        let Some(leaf) = chain.first() else {
            return Err("no certificate (no BEGIN CERTIFICATE block)".into());
        };
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| format!("the leaf certificate does not parse: {e}"))?;
        let not_after =
            UNIX_EPOCH + Duration::from_secs(parsed.validity().not_after.timestamp().max(0) as u64);
        if not_after <= SystemTime::now() {
            return Err(format!(
                "the certificate expired on {}",
                httpdate::fmt_http_date(not_after)
            ));
        }
        let mut names: Vec<String> = match parsed.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        Some(d.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if names.is_empty() {
            names.extend(
                parsed
                    .subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok())
                    .map(str::to_ascii_lowercase),
            );
        }
        let provider = rustls::crypto::ring::default_provider();
        let key = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not match the certificate".to_string()
            }
            e => format!("the key cannot be used: {e}"),
        })?;
        Ok(Certificate {
            names,
            key: Arc::new(key),
            not_after,
            source,
        })
    }

    /// Reads a certificate file and its key file; an error names the file
    /// at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, (PathBuf, String)> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| (p.to_path_buf(), e.to_string()));
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        Certificate::from_pem(&cert_pem, &key_pem, Source::File(cert.to_path_buf())).map_err(|e| {
            let at_fault = if e.contains("private key") { key } else { cert };
            (at_fault.to_path_buf(), e)
        })
    }

    /// A self-signed certificate for `names`, served until a real one comes.
    pub fn placeholder(names: &[String]) -> Result<Self, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        Certificate::from_pem(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            Source::Placeholder,
        )
    }

    pub fn expires_unix(&self) -> u64 {
        self.not_after
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Certificates by the names they answer.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the parent of `*.`: `example.com` for `*.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// The first certificate added.
    first: Option<Arc<CertifiedKey>>,
    pub list: Vec<Certificate>,
}

impl CertStore {
    /// Adds `cert` for its names; a name already taken keeps its first
    /// certificate.
    pub fn add(&mut self, mut cert: Certificate, names: Option<&[String]>) {
        if let Some(names) = names {
            cert.names = names.to_vec();
        }
        for name in &cert.names {
            match name.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.to_string()),
                None => self.exact.entry(name.clone()),
            }
            .or_insert_with(|| cert.key.clone());
        }
        self.first.get_or_insert_with(|| cert.key.clone());
        self.list.push(cert);
    }

    /// The certificate for `name`: exact, else a wildcard of its parent.
    pub fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        self.exact.get(name).or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent)
        })
    }

    pub fn first(&self) -> Option<&Arc<CertifiedKey>> {
        self.first.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn names_come_from_the_leaf_and_are_found_exactly_or_by_wildcard() {
        let (c1, k1) = pair(&["a.test"]);
        let (c2, k2) = pair(&["*.w.test"]);
        let mut store = CertStore::default();
        store.add(
            Certificate::from_pem(c1.as_bytes(), k1.as_bytes(), Source::Acme).unwrap(),
            None,
        );
        store.add(
            Certificate::from_pem(c2.as_bytes(), k2.as_bytes(), Source::Acme).unwrap(),
            None,
        );
        assert!(Arc::ptr_eq(
            store.find("a.test").unwrap(),
            store.first().unwrap()
        ));
        assert!(store.find("x.w.test").is_some());
        assert!(store.find("w.test").is_none());
        assert!(store.find("y.x.w.test").is_none());
        assert!(store.find("b.test").is_none());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (c1, _) = pair(&["a.test"]);
        let (_, k2) = pair(&["a.test"]);
        let e = Certificate::from_pem(c1.as_bytes(), k2.as_bytes(), Source::Acme).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        let e = Certificate::from_pem(b"junk", k2.as_bytes(), Source::Acme).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
    }
}
