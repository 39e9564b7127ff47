//! Certificates obtained and renewed over ACME (RFC 8555), with the HTTP-01
//! or TLS-ALPN-01 challenge, by a background service. The account key and
//! each domain's certificate live in the state directory, so a restart
//! serves what was obtained before. Until a domain has a certificate, a
//! self-signed placeholder answers for it; a failure keeps what is served
//! and is retried with backoff.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use parking_lot::Mutex;
use rustls::sign::CertifiedKey;
use sha2::Digest;

use super::certs::{Certificate, Source};
use crate::config::tls::{AcmeConfig, Challenge};
use crate::Active;

/// The first retry after a failure; each failure doubles it, up to the
/// check interval.
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// How long the CA may take to validate a challenge or issue.
const CA_PATIENCE: Duration = Duration::from_secs(90);
/// A whole attempt, however the CA stalls (a connection that never
/// answers), so that the other domains get their turn.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(300);

/// What `/diagnostics` and `/metrics` show of a domain.
#[derive(Debug, Clone, Default)]
pub struct DomainStatus {
    pub source: Option<Source>,
    pub not_after: Option<SystemTime>,
    pub renewals: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    pub next_check: Option<SystemTime>,
}

#[derive(Default)]
struct Served {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    /// The first configured domain's.
    first: Option<Arc<CertifiedKey>>,
}

/// The ACME side of the host: what it serves, the challenges it answers,
/// and each domain's status. Outlives config reloads.
#[derive(Default)]
pub struct Acme {
    served: ArcSwap<Served>,
    certs: Mutex<BTreeMap<String, Certificate>>,
    /// HTTP-01: token → key authorization.
    http_tokens: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01: domain → the challenge certificate.
    alpn_certs: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    status: Mutex<BTreeMap<String, DomainStatus>>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme").finish_non_exhaustive()
    }
}

fn reason(e: instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(p) => p.to_string(),
        e => e.to_string(),
    }
}

impl Acme {
    pub fn find(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.served.load().by_name.get(name).cloned()
    }

    pub fn first(&self) -> Option<Arc<CertifiedKey>> {
        self.served.load().first.clone()
    }

    /// The key authorization for an HTTP-01 token under validation.
    pub fn http_token(&self, token: &str) -> Option<String> {
        self.http_tokens.lock().get(token).cloned()
    }

    /// The TLS-ALPN-01 certificate for a domain under validation.
    pub fn alpn_cert(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        self.alpn_certs.lock().get(domain).cloned()
    }

    pub fn status(&self) -> BTreeMap<String, DomainStatus> {
        self.status.lock().clone()
    }

    fn install(&self, domain: &str, cert: Certificate, order: &[String]) {
        {
            let mut st = self.status.lock();
            let s = st.entry(domain.to_string()).or_default();
            s.source = Some(cert.source.clone());
            s.not_after = Some(cert.not_after);
        }
        let mut certs = self.certs.lock();
        certs.insert(domain.to_string(), cert);
        self.publish(&certs, order);
    }

    /// Drops domains no longer configured, then republishes.
    fn retain(&self, order: &[String]) {
        let mut certs = self.certs.lock();
        certs.retain(|d, _| order.contains(d));
        self.status.lock().retain(|d, _| order.contains(d));
        self.publish(&certs, order);
    }

    fn publish(&self, certs: &BTreeMap<String, Certificate>, order: &[String]) {
        let by_name: HashMap<String, Arc<CertifiedKey>> = certs
            .iter()
            .map(|(d, c)| (d.clone(), c.key.clone()))
            .collect();
        let first = order.iter().find_map(|d| by_name.get(d).cloned());
        self.served.store(Arc::new(Served { by_name, first }));
    }

    fn needs_certificate(&self, domain: &str, renew_before: Duration) -> bool {
        match self.certs.lock().get(domain) {
            Some(c) if c.source == Source::Acme => {
                c.not_after
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    <= renew_before
            }
            _ => true,
        }
    }

    fn note(&self, domain: &str, f: impl FnOnce(&mut DomainStatus)) {
        f(self.status.lock().entry(domain.to_string()).or_default());
    }
}

/// The ACME account this host uses with one CA.
struct AccountFor {
    directory: String,
    directory_ca: Option<PathBuf>,
    account: Account,
}

/// Obtains and renews the certificates, as a Pingora background service:
/// it starts with the server and stops at shutdown. It reads the ACME
/// settings of the active config at every turn, so a reload that adds a
/// domain is acted on within a second.
pub struct AcmeService {
    pub acme: Arc<Acme>,
    pub active: Arc<ArcSwap<Active>>,
}

/// When each domain is due, and its current backoff.
struct Due {
    at: Instant,
    backoff: Duration,
}

#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for AcmeService {
    async fn start(&self, mut shutdown: pingora_core::server::ShutdownWatch) {
        let mut account: Option<AccountFor> = None;
        let mut due: HashMap<String, Due> = HashMap::new();
        let mut domains: Vec<String> = Vec::new();
        loop {
            let config = self
                .active
                .load()
                .config
                .tls
                .as_ref()
                .and_then(|t| t.acme.clone());
            if let Some(config) = config {
                if config.domains != domains {
                    // At start, or a reload changed the list: drop what is
                    // no longer wanted.
                    self.acme.retain(&config.domains);
                    due.retain(|d, _| config.domains.contains(d));
                    domains.clone_from(&config.domains);
                }
                for domain in &config.domains {
                    if !self.acme.status.lock().contains_key(domain) {
                        self.first_sight(&config, domain);
                    }
                    let now = Instant::now();
                    let d = due.entry(domain.clone()).or_insert(Due {
                        at: now,
                        backoff: FIRST_RETRY,
                    });
                    if now < d.at {
                        continue;
                    }
                    if !self.acme.needs_certificate(domain, config.renew_before) {
                        d.at = now + config.check_every;
                        self.acme.note(domain, |s| {
                            s.next_check = Some(SystemTime::now() + config.check_every)
                        });
                        continue;
                    }
                    let attempt = tokio::time::timeout(
                        ATTEMPT_LIMIT,
                        self.obtain(&config, domain, &mut account),
                    );
                    let result = tokio::select! {
                        _ = shutdown.changed() => return,
                        r = attempt => r.unwrap_or_else(|_| {
                            Err(format!("no answer from the CA in {} s", ATTEMPT_LIMIT.as_secs()))
                        }),
                    };
                    match result {
                        Ok(cert) => {
                            tracing::info!(
                                event = "certificate_obtained",
                                domain,
                                expires = %httpdate::fmt_http_date(cert.not_after),
                                "ACME: certificate obtained"
                            );
                            self.acme.install(domain, cert, &config.domains);
                            self.acme.note(domain, |s| {
                                s.renewals += 1;
                                s.last_error = None;
                                s.next_check = Some(SystemTime::now() + config.check_every);
                            });
                            *d = Due {
                                at: Instant::now() + config.check_every,
                                backoff: FIRST_RETRY,
                            };
                        }
                        Err(e) => {
                            let wait = d.backoff;
                            tracing::error!(
                                event = "certificate_failed",
                                domain,
                                retry_in_s = wait.as_secs(),
                                "ACME: cannot obtain a certificate, serving the current one: {e}"
                            );
                            self.acme.note(domain, |s| {
                                s.failures += 1;
                                s.last_error = Some(e);
                                s.next_check = Some(SystemTime::now() + wait);
                            });
                            *d = Due {
                                at: Instant::now() + wait,
                                backoff: (wait * 2).min(config.check_every.max(FIRST_RETRY)),
                            };
                        }
                    }
                }
            } else if !domains.is_empty() {
                // A reload removed [tls.acme]: its certificates go too.
                self.acme.retain(&[]);
                due.clear();
                domains.clear();
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

fn domain_dir(config: &AcmeConfig, domain: &str) -> PathBuf {
    config.state_dir.join(domain)
}

/// Writes a file whole or not at all: to a temporary name, then renamed.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The certificate that answers the TLS-ALPN-01 challenge (RFC 8737). Its
/// acmeIdentifier extension is critical, which the checks of
/// [`Certificate::from_pem`] (webpki's) refuse, so it is assembled here.
fn alpn_challenge_cert(domain: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(|e| e.to_string())?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

/// Removes a challenge's answer when validation is over, however it ended.
struct Answer<'a> {
    acme: &'a Acme,
    token: Option<String>,
    domain: Option<String>,
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        if let Some(t) = &self.token {
            self.acme.http_tokens.lock().remove(t);
        }
        if let Some(d) = &self.domain {
            self.acme.alpn_certs.lock().remove(d);
        }
    }
}

impl AcmeService {
    /// At start (or when a reload adds the domain): what was obtained before,
    /// else a placeholder.
    fn first_sight(&self, config: &AcmeConfig, domain: &str) {
        let dir = domain_dir(config, domain);
        let stored = std::fs::read(dir.join("cert.pem"))
            .and_then(|c| std::fs::read(dir.join("key.pem")).map(|k| (c, k)));
        let cert = match stored {
            Ok((c, k)) => match Certificate::from_pem(&c, &k, Source::Acme) {
                Ok(cert) => Some(cert),
                Err(e) => {
                    tracing::warn!(domain, "ACME: the stored certificate is not used: {e}");
                    None
                }
            },
            Err(_) => None,
        };
        let cert = match cert {
            Some(c) => c,
            None => match Certificate::placeholder(&[domain.to_string()]) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(domain, "cannot make a placeholder certificate: {e}");
                    self.acme.note(domain, |_| {});
                    return;
                }
            },
        };
        self.acme.install(domain, cert, &config.domains);
    }

    async fn account<'a>(
        &self,
        config: &AcmeConfig,
        cached: &'a mut Option<AccountFor>,
    ) -> Result<&'a Account, String> {
        let same = cached.as_ref().is_some_and(|a| {
            a.directory == config.directory && a.directory_ca == config.directory_ca
        });
        if !same {
            *cached = None;
        }
        if let Some(a) = cached {
            return Ok(&a.account);
        }
        private_dir(&config.state_dir)
            .map_err(|e| format!("cannot create {}: {e}", config.state_dir.display()))?;
        // One account per CA: the file is named by the directory URL.
        let id = hex::encode(&sha2::Sha256::digest(config.directory.as_bytes())[..6]);
        let file = config.state_dir.join(format!("account-{id}.json"));
        let builder = || match &config.directory_ca {
            Some(ca) => Account::builder_with_root(ca).map_err(reason),
            None => Account::builder().map_err(reason),
        };
        let account = match std::fs::read(&file) {
            Ok(bytes) => {
                let creds: AccountCredentials = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                builder()?.from_credentials(creds).await.map_err(reason)?
            }
            Err(_) => {
                let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
                let (account, creds) = builder()?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        config.directory.clone(),
                        None,
                    )
                    .await
                    .map_err(reason)?;
                let json = serde_json::to_vec(&creds).map_err(|e| e.to_string())?;
                write_private(&file, &json)
                    .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
                tracing::info!(directory = %config.directory, "ACME: account created");
                account
            }
        };
        Ok(&cached
            .insert(AccountFor {
                directory: config.directory.clone(),
                directory_ca: config.directory_ca.clone(),
                account,
            })
            .account)
    }

    async fn obtain(
        &self,
        config: &AcmeConfig,
        domain: &str,
        cached: &mut Option<AccountFor>,
    ) -> Result<Certificate, String> {
        let account = self.account(config, cached).await?;
        let ids = [Identifier::Dns(domain.to_string())];
        let mut order = account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(reason)?;
        let mut answer = Answer {
            acme: &self.acme,
            token: None,
            domain: None,
        };
        let (kind, name) = match config.challenge {
            Challenge::Http01 => (ChallengeType::Http01, "http-01"),
            Challenge::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(reason)?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("the authorization is {other:?}")),
            }
            let mut challenge = authz
                .challenge(kind.clone())
                .ok_or_else(|| format!("the CA offers no {name} challenge for {domain}"))?;
            let key_auth = challenge.key_authorization();
            match config.challenge {
                Challenge::Http01 => {
                    self.acme
                        .http_tokens
                        .lock()
                        .insert(challenge.token.clone(), key_auth.as_str().to_string());
                    answer.token = Some(challenge.token.clone());
                }
                Challenge::TlsAlpn01 => {
                    let cert = alpn_challenge_cert(domain, key_auth.digest().as_ref())?;
                    self.acme.alpn_certs.lock().insert(domain.to_string(), cert);
                    answer.domain = Some(domain.to_string());
                }
            }
            challenge.set_ready().await.map_err(reason)?;
        }
        let patience = RetryPolicy::new().timeout(CA_PATIENCE);
        let status = order.poll_ready(&patience).await.map_err(reason)?;
        if status != OrderStatus::Ready {
            return Err(self.why_not_ready(&mut order, status).await);
        }
        drop(answer);
        let key_pem = order.finalize().await.map_err(reason)?;
        let chain_pem = order.poll_certificate(&patience).await.map_err(reason)?;
        let cert = Certificate::from_pem(chain_pem.as_bytes(), key_pem.as_bytes(), Source::Acme)
            .map_err(|e| format!("the CA's certificate is not usable: {e}"))?;
        let dir = domain_dir(config, domain);
        private_dir(&dir)
            .and_then(|_| write_private(&dir.join("key.pem"), key_pem.as_bytes()))
            .and_then(|_| write_private(&dir.join("cert.pem"), chain_pem.as_bytes()))
            .map_err(|e| format!("cannot store the certificate in {}: {e}", dir.display()))?;
        Ok(cert)
    }

    /// The CA's reasons for an order that did not become ready: the
    /// order's problem and each failed challenge's.
    async fn why_not_ready(&self, order: &mut instant_acme::Order, status: OrderStatus) -> String {
        let mut reasons = Vec::new();
        if let Some(p) = &order.state().error {
            reasons.push(p.to_string());
        }
        let mut authorizations = order.authorizations();
        while let Some(Ok(authz)) = authorizations.next().await {
            for c in &authz.challenges {
                if let Some(p) = &c.error {
                    reasons.push(p.to_string());
                }
            }
        }
        if reasons.is_empty() {
            format!("the order is {status:?}")
        } else {
            format!("the order is {status:?}: {}", reasons.join("; "))
        }
    }
}
