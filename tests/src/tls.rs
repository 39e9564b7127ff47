//! TLS for the tests: a test CA that issues server and client certificates,
//! a rustls client that reports what a handshake presented and negotiated,
//! an HTTPS reqwest client trusting the CA, and a TLS upstream (optionally
//! requiring a client certificate).

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, ProtocolVersion, RootCertStore,
    ServerConfig, SignatureScheme, StreamOwned, SupportedProtocolVersion,
};

/// Makes ring the process's rustls provider (reqwest and Kavro's crates
/// agree on it); harmless when already done.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> TestCa {
        init();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "Kavro test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2100, 1, 1);
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Writes the CA certificate to `dir/name` and returns the path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        std::fs::create_dir_all(dir).expect("certificate folder");
        let path = dir.join(name);
        std::fs::write(&path, self.pem()).expect("write CA certificate");
        path
    }

    fn issue(&self, names: &[&str], mut params: CertificateParams) -> Leaf {
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("kavro"),
        );
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            ca_pem: self.pem(),
            ca_der: self.der(),
        }
    }

    fn params(names: &[&str]) -> CertificateParams {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        CertificateParams::new(names).expect("subject alt names")
    }

    /// A server certificate for `names` (DNS names, `*.` wildcards
    /// allowed), valid from 2024 to 2100.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let mut params = Self::params(names);
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2100, 1, 1);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(names, params)
    }

    /// A server certificate for `names` that expired at the start of 2021.
    pub fn expired_leaf(&self, names: &[&str]) -> Leaf {
        let mut params = Self::params(names);
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(names, params)
    }

    /// A client certificate (for mTLS) named `name`.
    pub fn client_cert(&self, name: &str) -> Leaf {
        let mut params = Self::params(&[name]);
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2100, 1, 1);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(&[name], params)
    }
}

/// An issued certificate and its key.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    pub key_pem: String,
    /// PKCS#8.
    pub key_der: Vec<u8>,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
}

impl Leaf {
    /// The certificate's DER, as a handshake presents it.
    pub fn der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The chain file's text: the leaf, then the CA.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.ca_pem)
    }

    /// This certificate with another one's key: a pair that does not match.
    pub fn with_key_of(&self, other: &Leaf) -> Leaf {
        Leaf {
            key_pem: other.key_pem.clone(),
            key_der: other.key_der.clone(),
            ..self.clone()
        }
    }

    /// Writes `dir/STEM.pem` (the chain, leaf first) and `dir/STEM.key`;
    /// returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).expect("certificate folder");
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&key, &self.key_pem).expect("write key");
        std::fs::write(&cert, self.chain_pem()).expect("write certificate");
        (cert, key)
    }

    /// Replaces the files at `cert` and `key` as a deploy tool would: each
    /// written under a temporary name beside it, then renamed over it; the
    /// key first, then the certificate.
    pub fn replace(&self, cert: &Path, key: &Path) {
        for (path, text) in [(key, &self.key_pem), (cert, &self.chain_pem())] {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            std::fs::write(&tmp, text).expect("write temporary file");
            std::fs::rename(&tmp, path).expect("rename over");
        }
    }

    fn chain_der(&self) -> Vec<CertificateDer<'static>> {
        vec![
            CertificateDer::from(self.cert_der.clone()),
            self.ca_der.clone(),
        ]
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// Waits up to 30 s for `addr` to accept a TCP connection.
pub fn wait_for_port(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `https://NAME:PORT/PATH`.
pub fn https_url(name: &str, port: u16, path: &str) -> String {
    format!("https://{name}:{port}{path}")
}

/// An HTTPS client trusting `ca` only, with each of `names` resolving to
/// `addr`, not following redirects. HTTP/2 by ALPN unless `.http1_only()`.
pub fn https_client(
    ca: &TestCa,
    addr: SocketAddr,
    names: &[&str],
) -> reqwest::blocking::ClientBuilder {
    init();
    let mut b = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("CA for reqwest"),
        )
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20));
    for name in names {
        b = b.resolve(name, addr);
    }
    b
}

/// Accepts any server certificate (signatures are still checked): the
/// probe reports what was presented, whatever the name asked for.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A finished TLS handshake: what the server presented and agreed to, and
/// the connection, open for HTTP/1.1 requests.
pub struct Handshake {
    /// The leaf certificate presented, DER.
    pub cert: Vec<u8>,
    /// The protocol agreed by ALPN, if any.
    pub alpn: Option<Vec<u8>>,
    pub version: Option<ProtocolVersion>,
    /// Whether the session was resumed rather than fully negotiated.
    pub resumed: bool,
    stream: StreamOwned<ClientConnection, TcpStream>,
}

/// Connects to `addr` and completes a handshake, sending `sni` (none: the
/// server name is the IP address, which rustls does not send) and offering
/// `alpn`; TLS 1.2 and 1.3. Every step is bounded (5 s reads, 10 s in all).
pub fn handshake(addr: SocketAddr, sni: Option<&str>, alpn: &[&str]) -> Result<Handshake, String> {
    handshake_with(addr, sni, alpn, rustls::DEFAULT_VERSIONS)
}

/// [`handshake`] offering only TLS 1.2.
pub fn handshake_tls12(
    addr: SocketAddr,
    sni: Option<&str>,
    alpn: &[&str],
) -> Result<Handshake, String> {
    handshake_with(addr, sni, alpn, &[&rustls::version::TLS12])
}

/// Two handshakes from one client (sharing its session store) with `sni`,
/// offering HTTP/1.1: the first makes a request on its connection (over
/// TLS 1.3 the server's session tickets come after the handshake), the
/// second may resume the first's session.
pub fn handshake_twice(
    addr: SocketAddr,
    sni: Option<&str>,
    host: &str,
) -> Result<(Handshake, Handshake), String> {
    let config = client_config(&["http/1.1"], rustls::DEFAULT_VERSIONS)?;
    let mut first = connect(config.clone(), addr, sni)?;
    first.get(host, "/")?;
    let second = connect(config, addr, sni)?;
    Ok((first, second))
}

fn handshake_with(
    addr: SocketAddr,
    sni: Option<&str>,
    alpn: &[&str],
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Handshake, String> {
    connect(client_config(alpn, versions)?, addr, sni)
}

fn client_config(
    alpn: &[&str],
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<ClientConfig>, String> {
    init();
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("client config: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

fn connect(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    sni: Option<&str>,
) -> Result<Handshake, String> {
    let name: ServerName<'static> = match sni {
        Some(n) => ServerName::try_from(n.to_string()).map_err(|e| format!("SNI `{n}`: {e}"))?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let mut conn = ClientConnection::new(config, name).map_err(|e| format!("client: {e}"))?;
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|_| tcp.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| format!("timeouts: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn.is_handshaking() {
        if Instant::now() > deadline {
            return Err("handshake: no end after 10 s".into());
        }
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err("handshake: the server closed the connection".into())
            }
            Ok(_) => {}
            Err(e) => return Err(format!("handshake: {e}")),
        }
    }
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or("handshake: no certificate presented")?;
    Ok(Handshake {
        cert,
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        version: conn.protocol_version(),
        resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        stream: StreamOwned::new(conn, tcp),
    })
}

impl Handshake {
    /// `GET path` over HTTP/1.1 on this connection (kept alive): the
    /// status and the body.
    pub fn get(&mut self, host: &str, path: &str) -> Result<(u16, String), String> {
        if self.alpn.as_deref() == Some(b"h2") {
            return Err("HTTP/2 was negotiated on this connection".into());
        }
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kavro-e2e\r\n\r\n");
        self.stream
            .write_all(req.as_bytes())
            .and_then(|_| self.stream.flush())
            .map_err(|e| format!("write: {e}"))?;
        read_response(&mut self.stream)
    }
}

fn read_response(r: &mut impl Read) -> Result<(u16, String), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = r.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!(
                "closed before the response head: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut body = buf[head_end..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let mut fill = |body: &mut Vec<u8>, want: usize| -> Result<(), String> {
        while body.len() < want {
            let n = r.read(&mut chunk).map_err(|e| format!("read body: {e}"))?;
            if n == 0 {
                return Err("closed in the body".into());
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = loop {
                if let Some(i) = body[pos..].windows(2).position(|w| w == b"\r\n") {
                    break pos + i;
                }
                let want = body.len() + 1;
                fill(&mut body, want)?;
            };
            let size_text = String::from_utf8_lossy(&body[pos..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {size_text:?}"))?;
            let start = line_end + 2;
            fill(&mut body, start + size + 2)?;
            if size == 0 {
                break;
            }
            out.extend_from_slice(&body[start..start + size]);
            pos = start + size + 2;
        }
        return Ok((status, String::from_utf8_lossy(&out).into_owned()));
    }
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    fill(&mut body, len)?;
    body.truncate(len);
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// An HTTPS/1.1 upstream on loopback that answers every request `200` with
/// its body, presenting a certificate from the test CA.
pub struct TlsUpstream {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    sni: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

impl TlsUpstream {
    /// Serves `leaf` (with its chain); with `client_ca`, a client must
    /// present a certificate that chains to it.
    pub fn start(leaf: &Leaf, client_ca: Option<&TestCa>, body: &str) -> TlsUpstream {
        init();
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.der()).expect("client CA");
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        // No ALPN: the client falls back to HTTP/1.1, whatever it offers.
        let config = builder
            .with_single_cert(leaf.chain_der(), leaf.private_key())
            .expect("upstream certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let (rt, listener) = crate::server_runtime("127.0.0.1:0");
        let addr = listener.local_addr().expect("upstream address");
        let hits = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let sni = Arc::new(Mutex::new(Vec::new()));
        let body = Bytes::from(body.to_string());
        let (h, f, s) = (hits.clone(), refused.clone(), sni.clone());
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, hits, refused, sni, body) = (
                    acceptor.clone(),
                    h.clone(),
                    f.clone(),
                    s.clone(),
                    body.clone(),
                );
                tokio::spawn(async move {
                    let accepted =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp));
                    let tls = match accepted.await {
                        Ok(Ok(tls)) => tls,
                        _ => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    if let Some(name) = tls.get_ref().1.server_name() {
                        sni.lock().expect("not poisoned").push(name.to_string());
                    }
                    let svc = service_fn(move |_req| {
                        hits.fetch_add(1, Ordering::Relaxed);
                        let resp = Response::builder()
                            .header("content-type", "text/plain")
                            .header("x-upstream", "tls")
                            .body(Full::new(body.clone()))
                            .expect("response");
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        TlsUpstream {
            addr,
            hits,
            refused,
            sni,
            _rt: rt,
        }
    }

    /// Requests answered.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Connections whose handshake failed (or did not finish in 10 s).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// The names clients sent by SNI, one per connection that sent one.
    pub fn sni_seen(&self) -> Vec<String> {
        self.sni.lock().expect("not poisoned").clone()
    }
}

/// A WebSocket over TLS (`wss://`) to `addr`, trusting `ca` only, with SNI
/// `name`, offering HTTP/1.1 by ALPN: the client, or the handshake's error.
pub async fn wss(
    ca: &TestCa,
    addr: SocketAddr,
    name: &str,
    path: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    String,
> {
    init();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).map_err(|e| format!("root: {e}"))?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("client config: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let server = ServerName::try_from(name.to_string()).map_err(|e| format!("name: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let url = format!("wss://{name}:{}{path}", addr.port());
    tokio_tungstenite::client_async(url, tls)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| format!("WebSocket handshake: {e}"))
}
