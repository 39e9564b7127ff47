//! The native limit under Kavro: a Pingora `ProxyHttp` with no logic that
//! forwards every request to one upstream. The benchmark runs it with the
//! same runtime settings as kavro-host, so the ratio between the two is
//! what Kavro's own work costs.
//!
//! With `--tls-cert` and `--tls-key`, `--listen` speaks TLS instead, with
//! the settings Kavro's TLS listeners use: rustls (TLS 1.2 and 1.3), one
//! certificate, HTTP/2 and HTTP/1.1 by ALPN.
//!
//! With `--header-work`, it does natively the header work the benchmark
//! also gives Kavro (as a plugin) and nginx (in Lua): `x-user-checked` set
//! on the upstream request when the client sent `x-user`, and
//! `x-frame-options` and `x-powered-by-plugin` set on every response.

use async_trait::async_trait;
use clap::Parser;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "A bare Pingora reverse proxy: the baseline for Kavro's benchmarks")]
struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// The upstream every request goes to.
    #[arg(long, default_value = "127.0.0.1:8091")]
    upstream: String,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Let idle worker threads steal tasks from busy ones.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    work_stealing: bool,
    /// Bound each upstream read, as Kavro must for its 504 (off by default:
    /// the bare baseline has no logic at all).
    #[arg(long)]
    read_timeout_ms: Option<u64>,
    /// Serve `--listen` over TLS with this certificate chain (PEM, leaf
    /// first); needs `--tls-key`. Without it, `--listen` is plain HTTP.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<String>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<String>,
    /// Do the benchmark's header work natively (see the module docs).
    #[arg(long)]
    header_work: bool,
}

struct Bare {
    upstream: String,
    read_timeout: Option<std::time::Duration>,
    header_work: bool,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        peer.options.read_timeout = self.read_timeout;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        _: &mut (),
    ) -> Result<()> {
        if self.header_work && session.req_header().headers.contains_key("x-user") {
            upstream.insert_header("x-user-checked", "true")?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _: &mut Session,
        response: &mut ResponseHeader,
        _: &mut (),
    ) -> Result<()> {
        if self.header_work {
            response.insert_header("x-frame-options", "DENY")?;
            response.insert_header("x-powered-by-plugin", "native")?;
        }
        Ok(())
    }
}

fn main() {
    let args = Args::parse();
    let threads = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.threads
    };
    let conf = ServerConf {
        threads,
        work_stealing: args.work_stealing,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(
        &server.configuration,
        Bare {
            upstream: args.upstream,
            read_timeout: args.read_timeout_ms.map(std::time::Duration::from_millis),
            header_work: args.header_work,
        },
    );
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let mut tls = TlsSettings::intermediate(cert, key).expect("TLS settings");
            tls.enable_h2();
            proxy.add_tls_with_settings(&args.listen, None, tls);
        }
        _ => proxy.add_tcp(&args.listen),
    }
    server.add_service(proxy);
    server.run_forever();
}
