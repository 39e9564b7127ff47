//! The `[tls]` table and the TLS settings of upstreams, validated into plain
//! data. Certificate files are read when the services are built, where a
//! bad one refuses the config with its file and reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::model::{self, AcmeSection, ListenEntry, TlsSection, UpstreamSection};
pub use super::model::{Challenge, UnknownName};
use super::{check_addr, Reporter};

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen: Vec<String>,
    /// Plain listeners redirect to HTTPS (those that opted out aside).
    pub redirect: bool,
    /// The port written in redirects.
    pub https_port: u16,
    /// The Strict-Transport-Security value for HTTPS responses.
    pub hsts: Option<http::HeaderValue>,
    pub unknown_name: UnknownName,
    pub certificates: Vec<CertificateFiles>,
    pub acme: Option<AcmeConfig>,
}

impl TlsConfig {
    /// The certificate and key files, which are watched for changes.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.certificates
            .iter()
            .flat_map(|c| [c.cert.as_path(), c.key.as_path()])
    }
}

#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `None`: the leaf's DNS names.
    pub names: Option<Vec<String>>,
    /// Where the entry's `cert` is written (line, column).
    pub position: (usize, usize),
    pub field: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AcmeConfig {
    pub domains: Vec<String>,
    pub directory: String,
    pub directory_ca: Option<PathBuf>,
    pub contact: Vec<String>,
    pub challenge: Challenge,
    pub state_dir: PathBuf,
    pub renew_before: Duration,
    pub check_every: Duration,
}

/// TLS towards an upstream's targets.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// `None`: each target's host name.
    pub sni: Option<String>,
    pub ca: Option<PathBuf>,
    pub verify: bool,
    pub client: Option<(PathBuf, PathBuf)>,
}

fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// A DNS name as a certificate may carry it: labels of letters, digits
/// and hyphens, optionally `*.` in front.
pub fn dns_name(name: &str, wildcard: bool) -> bool {
    let name = match name.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => name,
    };
    name.contains('.')
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

pub(super) fn compile(r: &mut Reporter<'_>, raw: TlsSection, base: &Path) -> Option<TlsConfig> {
    let mut ok = true;
    let mut listen = Vec::with_capacity(raw.listen.len());
    for (i, l) in raw.listen.iter().enumerate() {
        let field = format!("tls.listen[{i}]");
        let addr = Spanned::new(l.span(), l.get_ref().address().to_string());
        ok &= check_addr(r, &addr, &field);
        if matches!(l.get_ref(), ListenEntry::Table(t) if t.redirect.is_some()) {
            r.error(
                Some(l.span()),
                format!("{field}.redirect"),
                "`redirect` is for plain listeners: a TLS listener serves HTTPS",
                "remove it, or set `redirect` in [tls] for every plain listener",
            );
            ok = false;
        }
        listen.push(addr.into_inner());
    }
    if listen.is_empty() {
        r.error(
            None,
            "tls.listen",
            "TLS is configured with no listen address",
            "add one, e.g. listen = [\"0.0.0.0:443\"]",
        );
        ok = false;
    }
    let https_port = raw
        .https_port
        .or_else(|| listen.first().and_then(|l| port_of(l)))
        .unwrap_or(443);
    let hsts = raw.hsts.map(|h| {
        let mut v = format!("max-age={}", h.max_age_s);
        if h.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if h.preload {
            v.push_str("; preload");
        }
        http::HeaderValue::from_str(&v).expect("ASCII digits and words")
    });
    let mut certificates = Vec::new();
    for (i, c) in raw.certificates.into_iter().enumerate() {
        let field = format!("tls.certificates[{i}]");
        if let Some(names) = &c.names {
            for (j, n) in names.iter().enumerate() {
                if !dns_name(n, true) {
                    r.error(
                        Some(c.cert.span()),
                        format!("{field}.names[{j}]"),
                        format!("`{n}` is not a DNS name"),
                        "write names such as \"example.com\" or \"*.example.com\"",
                    );
                    ok = false;
                }
            }
        }
        certificates.push(CertificateFiles {
            cert: base.join(c.cert.get_ref()),
            key: base.join(c.key.get_ref()),
            names: c
                .names
                .map(|n| n.iter().map(|n| n.to_ascii_lowercase()).collect()),
            position: r.position(c.cert.span()),
            field,
        });
    }
    let acme = match raw.acme {
        Some(a) => {
            let acme = compile_acme(r, a, base);
            ok &= acme.is_some();
            acme
        }
        None => None,
    };
    if certificates.is_empty() && acme.is_none() && ok {
        r.error(
            None,
            "tls",
            "TLS is configured with no certificate",
            "add a [[tls.certificates]] entry with cert and key files, or a [tls.acme] table",
        );
        ok = false;
    }
    ok.then(|| TlsConfig {
        listen,
        redirect: raw.redirect,
        https_port,
        hsts,
        unknown_name: raw.unknown_name,
        certificates,
        acme,
    })
}

pub(super) fn duration(
    r: &mut Reporter<'_>,
    v: &Spanned<model::DurationValue>,
    field: &str,
) -> Duration {
    match v.get_ref().parse() {
        Ok(d) => d,
        Err(e) => {
            r.error(
                Some(v.span()),
                field,
                e.to_string(),
                "write a duration such as \"12h\" or \"30days\"",
            );
            Duration::ZERO
        }
    }
}

fn compile_acme(r: &mut Reporter<'_>, a: AcmeSection, base: &Path) -> Option<AcmeConfig> {
    let errors = r.errors.len();
    if a.domains.is_empty() {
        r.error(
            None,
            "tls.acme.domains",
            "ACME is configured with no domain",
            "list the names to obtain certificates for, e.g. domains = [\"example.com\"]",
        );
    }
    for (i, d) in a.domains.iter().enumerate() {
        let field = format!("tls.acme.domains[{i}]");
        if d.get_ref().starts_with("*.") {
            r.error(
                Some(d.span()),
                field,
                format!("`{}` is a wildcard", d.get_ref()),
                "wildcards need the DNS-01 challenge, which Kavro does not do: \
                 list the wildcard's certificate in [[tls.certificates]]",
            );
        } else if !dns_name(d.get_ref(), false) {
            r.error(
                Some(d.span()),
                field,
                format!("`{}` is not a DNS name", d.get_ref()),
                "write a name such as \"example.com\"",
            );
        }
    }
    let directory = a.directory.get_ref();
    if !directory.starts_with("https://") && !directory.starts_with("http://") {
        r.error(
            Some(a.directory.span()),
            "tls.acme.directory",
            format!("`{directory}` is not a URL"),
            "write the CA's ACME directory URL, e.g. \
             \"https://acme-v02.api.letsencrypt.org/directory\"",
        );
    }
    let directory_ca = a.directory_ca.as_ref().map(|ca| {
        let path = base.join(ca.get_ref());
        if !path.is_file() {
            r.error(
                Some(ca.span()),
                "tls.acme.directory_ca",
                format!("`{}` is not a file", path.display()),
                "point it at a PEM file of the roots the directory's HTTPS certificate chains to \
                 (relative paths start at the config file's folder)",
            );
        }
        path
    });
    let renew_before = duration(r, &a.renew_before, "tls.acme.renew_before");
    let check_every = duration(r, &a.check_every, "tls.acme.check_every");
    if check_every < Duration::from_secs(1) && r.errors.len() == errors {
        r.error(
            Some(a.check_every.span()),
            "tls.acme.check_every",
            "checks must be at least a second apart",
            "the default is \"12h\"",
        );
    }
    (r.errors.len() == errors).then(|| AcmeConfig {
        domains: a
            .domains
            .iter()
            .map(|d| d.get_ref().to_ascii_lowercase())
            .collect(),
        directory: directory.clone(),
        directory_ca,
        contact: a.contact,
        challenge: a.challenge,
        state_dir: base.join(&a.state_dir),
        renew_before,
        check_every,
    })
}

/// A target as written: `https://host[:port]` (TLS, port 443 by default),
/// `http://host:port` or `host:port`. Returns the `host:port` and whether
/// the scheme asks for TLS.
pub fn split_target(target: &str) -> (String, bool) {
    if let Some(rest) = target.strip_prefix("https://") {
        let rest = rest.trim_end_matches('/');
        if port_of(rest).is_some() && !rest.ends_with(']') {
            (rest.to_string(), true)
        } else {
            (format!("{rest}:443"), true)
        }
    } else {
        let rest = target.strip_prefix("http://").unwrap_or(target);
        (rest.trim_end_matches('/').to_string(), false)
    }
}

/// The TLS settings of an upstream whose targets are given (as `host:port`),
/// `None` when it speaks plain HTTP.
pub(super) fn compile_upstream(
    r: &mut Reporter<'_>,
    field: &str,
    u: &UpstreamSection,
    targets: &[(String, bool)],
    base: &Path,
) -> Option<UpstreamTls> {
    let any_tls = targets.iter().any(|(_, tls)| *tls);
    if any_tls && !targets.iter().all(|(_, tls)| *tls) && !u.tls {
        r.error(
            u.targets.first().map(|t| t.span()),
            format!("{field}.targets"),
            "some targets are https:// and some are not",
            "an upstream speaks TLS to all its targets or to none: write them all with \
             https://, or set tls = true",
        );
    }
    let tls = u.tls || any_tls;
    let file = |r: &mut Reporter<'_>, v: &Option<Spanned<String>>, key: &str| {
        v.as_ref().map(|v| {
            let path = base.join(v.get_ref());
            if !path.is_file() {
                r.error(
                    Some(v.span()),
                    format!("{field}.{key}"),
                    format!("`{}` is not a file", path.display()),
                    "point it at a PEM file (relative paths start at the config file's folder)",
                );
            }
            if !tls {
                r.error(
                    Some(v.span()),
                    format!("{field}.{key}"),
                    "TLS settings on an upstream that does not use TLS",
                    "set tls = true, or write the targets with https://",
                );
            }
            path
        })
    };
    let ca = file(r, &u.ca, "ca");
    let cert = file(r, &u.client_cert, "client_cert");
    let key = file(r, &u.client_key, "client_key");
    let client = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            r.error(
                u.client_cert
                    .as_ref()
                    .or(u.client_key.as_ref())
                    .map(|v| v.span()),
                format!("{field}.client_cert"),
                "a client certificate needs both client_cert and client_key",
                "set both, or neither",
            );
            None
        }
    };
    if !tls {
        return None;
    }
    if u.sni.is_none() && u.verify {
        for (i, (t, _)) in targets.iter().enumerate() {
            let host = t.rsplit_once(':').map_or(t.as_str(), |(h, _)| h);
            if host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok()
            {
                r.error(
                    Some(u.targets[i].span()),
                    format!("{field}.targets[{i}]"),
                    format!("`{t}` is an IP address: there is no name to verify its certificate against"),
                    "set sni = \"the name in the upstream's certificate\" (or verify = false, for testing only)",
                );
            }
        }
    }
    Some(UpstreamTls {
        sni: u.sni.clone(),
        ca,
        verify: u.verify,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_with_a_scheme_split_into_address_and_tls() {
        assert_eq!(
            split_target("https://api.test"),
            ("api.test:443".into(), true)
        );
        assert_eq!(
            split_target("https://api.test:8443/"),
            ("api.test:8443".into(), true)
        );
        assert_eq!(
            split_target("http://api.test:80"),
            ("api.test:80".into(), false)
        );
        assert_eq!(split_target("10.0.0.1:80"), ("10.0.0.1:80".into(), false));
    }

    #[test]
    fn dns_names_and_wildcards() {
        assert!(dns_name("example.com", false));
        assert!(dns_name("*.example.com", true));
        assert!(!dns_name("*.example.com", false));
        assert!(!dns_name("localhost", false));
        assert!(!dns_name("exa mple.com", false));
    }
}
