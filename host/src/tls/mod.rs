//! HTTPS: TLS listeners whose certificates are chosen by server name,
//! certificates obtained and renewed over ACME, the redirect of plain HTTP
//! to HTTPS, and TLS towards upstreams.
//!
//! Certificates from files live in the active [`Services`](crate::services::Services),
//! so a reload swaps them with everything else in one store; those from
//! ACME live in [`acme::Acme`], which outlives reloads. The resolver reads
//! both at each handshake: a connection keeps the certificate it was
//! handed, and new handshakes see a swap at once.

pub mod acme;
pub mod alpn_challenge;
pub mod certs;
pub mod redirect;
pub mod upstream;
mod watch;

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora_core::listeners::tls::TlsSettings;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::tls::UnknownName;
use crate::Active;

pub use alpn_challenge::AlpnChallenge;
pub use watch::CertWatch;

/// One crypto provider for the process (Pingora's listener and connector,
/// the ACME client): ring.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Chooses the certificate for each handshake by its server name (SNI).
pub struct Resolver {
    active: Arc<ArcSwap<Active>>,
    acme: Arc<acme::Acme>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    pub fn new(active: Arc<ArcSwap<Active>>, acme: Arc<acme::Acme>) -> Resolver {
        Resolver { active, acme }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let active = self.active.load();
        let files = &active.services.certs;
        if let Some(name) = hello.server_name() {
            let name = name.to_ascii_lowercase();
            if let Some(key) = files.find(&name).cloned().or_else(|| self.acme.find(&name)) {
                return Some(key);
            }
        }
        let unknown = active
            .config
            .tls
            .as_ref()
            .map_or(UnknownName::Default, |t| t.unknown_name);
        match unknown {
            UnknownName::Default => files.first().cloned().or_else(|| self.acme.first()),
            UnknownName::Refuse => None,
        }
    }
}

/// The settings of one TLS listener: certificates by the resolver, HTTP/2
/// and HTTP/1.1 by ALPN. Pingora fixes the versions at TLS 1.2 and 1.3, and
/// rustls offers only AEAD suites with forward secrecy.
pub fn listener_settings(resolver: Arc<Resolver>) -> pingora_core::Result<TlsSettings> {
    let mut settings = TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(resolver);
    settings.enable_h2();
    Ok(settings)
}

/// Whether the session's connection is TLS.
pub fn is_tls(session: &pingora_proxy::Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The certificates served and each ACME domain's state, for `/diagnostics`.
pub fn diagnostics(active: &Active, acme: &acme::Acme) -> serde_json::Value {
    let Some(tls) = &active.config.tls else {
        return serde_json::Value::Null;
    };
    let certificates: Vec<_> = active
        .services
        .certs
        .list
        .iter()
        .map(|c| {
            serde_json::json!({
                "names": c.names,
                "source": c.source.label(),
                "file": match &c.source { certs::Source::File(p) => Some(p.display().to_string()), _ => None },
                "expires": unix(c.not_after),
                "expires_date": httpdate::fmt_http_date(c.not_after),
            })
        })
        .collect();
    let domains: serde_json::Map<String, serde_json::Value> = acme
        .status()
        .into_iter()
        .map(|(domain, s)| {
            let v = serde_json::json!({
                "source": s.source.as_ref().map(|s| s.label()),
                "expires": s.not_after.map(unix),
                "renewals": s.renewals,
                "failures": s.failures,
                "last_error": s.last_error,
                "next_check": s.next_check.map(unix),
            });
            (domain, v)
        })
        .collect();
    serde_json::json!({
        "listen": tls.listen,
        "certificates": certificates,
        "acme": domains,
    })
}

/// Certificate expiry and ACME outcomes, in Prometheus' text format.
pub fn metrics(active: &Active, acme: &acme::Acme, out: &mut String) {
    use std::fmt::Write;
    if active.config.tls.is_none() {
        return;
    }
    let status = acme.status();
    out.push_str("# HELP kavro_tls_certificate_expiry_seconds When a served certificate expires (Unix time).\n");
    out.push_str("# TYPE kavro_tls_certificate_expiry_seconds gauge\n");
    for c in &active.services.certs.list {
        for name in &c.names {
            let _ = writeln!(
                out,
                "kavro_tls_certificate_expiry_seconds{{name=\"{name}\",source=\"file\"}} {}",
                unix(c.not_after)
            );
        }
    }
    for (domain, s) in &status {
        if let (Some(source), Some(t)) = (&s.source, s.not_after) {
            let _ = writeln!(
                out,
                "kavro_tls_certificate_expiry_seconds{{name=\"{domain}\",source=\"{}\"}} {}",
                source.label(),
                unix(t)
            );
        }
    }
    acme_counter(
        out,
        "renewals",
        "Certificates obtained over ACME.",
        &status,
        |s| s.renewals,
    );
    acme_counter(
        out,
        "failures",
        "ACME attempts that failed.",
        &status,
        |s| s.failures,
    );
}

/// One ACME counter, a line per domain.
fn acme_counter(
    out: &mut String,
    metric: &str,
    help: &str,
    status: &std::collections::BTreeMap<String, acme::DomainStatus>,
    value: fn(&acme::DomainStatus) -> u64,
) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP kavro_acme_{metric}_total {help}");
    let _ = writeln!(out, "# TYPE kavro_acme_{metric}_total counter");
    for (domain, s) in status {
        let _ = writeln!(
            out,
            "kavro_acme_{metric}_total{{domain=\"{domain}\"}} {}",
            value(s)
        );
    }
}
