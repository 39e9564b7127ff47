//! Start-up: config, plugins, then Pingora services for traffic and admin.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{RunArgs, Server};

use crate::admin::Admin;
use crate::cli::{Cli, Command};
use crate::config::model::LogFormat;
use crate::config::{Config, Diagnostic, Diagnostics};
use crate::pipeline::Kavro;
use crate::plugin::caps::Shared;
use crate::plugin::{artifacts, registry, PluginSet};
use crate::protect::proxy_protocol::PreHandshake;
use crate::reload::Reloader;
use crate::services::Services;
use crate::tls::acme::{Acme, AcmeService};
use crate::tls::{AlpnChallenge, CertWatch, Resolver};
use crate::Active;

/// What is logged without KAVRO_LOG. Pingora's connector logs, as an
/// error, each time a pooled upstream connection is still held by its idle
/// watcher on the other worker when a request wants it (a fraction of a
/// percent of requests under load); the request then opens a new
/// connection and nothing fails, so the default leaves that out.
const DEFAULT_LOG: &str = "info,pingora_core::connectors=off";

fn plugin_line(m: &tracing::Metadata<'_>) -> bool {
    m.target() == crate::plugin::caps::log::TARGET
}

/// Logs go to stderr through a writer thread, so a request never waits on
/// a log write; when the writer falls behind, callers wait rather than
/// lines being dropped. The thread writes what is queued, then flushes: one
/// write for a burst of access-log lines, not one per line.
fn init_tracing(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::{fmt, prelude::*, EnvFilter};
    let filter =
        || EnvFilter::try_from_env("KAVRO_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("kavro-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let ansi = std::io::stderr().is_terminal() && format == LogFormat::Text;
    // Routing by target says nothing about levels: the EnvFilter's level
    // stays the subscriber's, and so the `log` crate's maximum, without
    // which every debug line of Pingora's would be formatted and dropped.
    let route = |f: fn(&tracing::Metadata<'_>) -> bool| {
        filter_fn(f).with_max_level_hint(tracing::level_filters::LevelFilter::TRACE)
    };
    if format == LogFormat::Json {
        // One object per line, the fields at its top level beside
        // `timestamp`, `level`, `target` and `message`.
        let json = fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(writer)
            .with_filter(filter());
        let _ = tracing_subscriber::registry().with(json).try_init();
        return guard;
    }
    let host = fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer.clone())
        .with_filter(filter().and(route(|m| !plugin_line(m))));
    // Plugin lines come escaped by the log import, in one pass; this
    // layer's own escaping writes a character at a time, and cost more
    // than the rest of an access-log line.
    let plugins = fmt::layer()
        .with_ansi(ansi)
        .with_ansi_sanitization(false)
        .with_writer(writer)
        .with_filter(filter().and(route(plugin_line)));
    let _ = tracing_subscriber::registry()
        .with(host)
        .with(plugins)
        .try_init();
    guard
}

fn print_errors(errors: &[Diagnostic]) {
    eprintln!("{}", Diagnostics(errors.to_vec()));
}

/// Warns about files under static roots whose `!>` directives would not
/// run (the host serves them as 500s).
fn warn_directives(services: &Services, plugins: &PluginSet) {
    for route in services.routes.iter() {
        let crate::routing::RouteAction::Static(root) = &route.action else {
            continue;
        };
        if let Some(dir) = root.directed_root() {
            let answered = |name: &str| plugins.directive(name, Some(route.index)).is_some();
            for problem in crate::actions::directives::problems(dir, answered) {
                eprintln!("warning: route `{}`: {problem}", route.name);
            }
        }
    }
}

/// Runs the CLI; returns the exit code.
pub fn main(mut cli: Cli) -> i32 {
    let validate = match cli.command.take() {
        Some(Command::Plugin(command)) => return crate::authoring::main(command, &cli),
        Some(Command::Validate(args)) => {
            let mut common = args.common;
            common.config = args.file.or(common.config);
            cli.common = common.or(&cli.common);
            true
        }
        Some(Command::Compile(args)) => {
            let file = args.file.or_else(|| cli.common.config.clone());
            return match Config::canonical(file.as_deref()) {
                Ok(graph) => {
                    print!("{graph}");
                    0
                }
                Err(d) => {
                    eprintln!("{d}");
                    2
                }
            };
        }
        None => false,
    };
    crate::tls::install_crypto();
    let mut config = match Config::load(cli.common.config.as_deref()) {
        Ok(c) => c,
        Err(d) => {
            eprintln!("{d}");
            return 2;
        }
    };
    // Dropped on return, which flushes what is queued; a host that serves
    // hands it to `shutdown`, which exits the process itself.
    let log = init_tracing(config.log_format);
    if !cli.listen.is_empty() {
        // `[[servers]]` keep their own listeners.
        config.listen = cli.listen.clone();
        for l in &config.server_listen {
            if !config.listen.contains(l) {
                config.listen.push(l.clone());
            }
        }
        // Only listeners that exist keep their PROXY protocol.
        let tls_listen: Vec<String> = config.tls.iter().flat_map(|t| t.listen.clone()).collect();
        let kept = |a: &String| config.listen.contains(a) || tls_listen.contains(a);
        config.proxy_protocol = config
            .proxy_protocol
            .iter()
            .filter(|a| kept(a))
            .cloned()
            .collect();
    }
    if let Some(a) = &cli.admin {
        config.admin = Some(a.clone());
    }
    if let Some(t) = cli.threads {
        config.threads = t;
    }
    if let Some(w) = cli.work_stealing {
        config.work_stealing = w;
    }
    let cache_dir = cli.common.cache.dir();
    let shared = Arc::new(Shared::new(&config));
    let services = match Services::build(&config) {
        Ok(s) => s,
        Err(d) => {
            eprintln!("{d}");
            return 2;
        }
    };

    // A runtime of its own, not a Pingora service: the plugins load before
    // the server exists (a start refuses bad ones before listening), and
    // `validate` never serves at all.
    let Some(rt) = current_thread_runtime() else {
        return 1;
    };
    let dir = cli.common.plugins_dir();
    let plugins = if !dir.exists() && cli.common.plugins.is_none() {
        tracing::warn!("no ./plugins folder: serving without plugins");
        Ok(PluginSet::default())
    } else {
        rt.block_on(registry::load(
            dir,
            &config,
            &services.upstreams,
            cache_dir.as_deref(),
            &shared,
            artifacts::Urgency::Start,
        ))
    };
    let plugins = match plugins {
        Ok(p) => p,
        Err(errors) => {
            print_errors(&errors);
            return 1;
        }
    };

    if validate {
        warn_directives(&services, &plugins);
        let names: Vec<String> = plugins
            .plugins
            .iter()
            .map(|p| format!("{} [{}]", p.name, p.phases.names().join(",")))
            .collect();
        println!(
            "ok: {} — {} route(s), {} upstream(s), {} plugin(s){}{}",
            config.source,
            config.routes.len(),
            config.upstreams.len(),
            names.len(),
            if names.is_empty() { "" } else { ": " },
            names.join(", ")
        );
        return 0;
    }
    drop(rt);
    crate::shutdown::hold_log(log);
    let sources = Sources {
        config_path: cli.common.config.clone(),
        plugins_dir: cli.common.plugins_dir().to_path_buf(),
        cache_dir,
    };
    let handover = Handover {
        take_over: cli.upgrade,
        socket: cli.upgrade_socket.to_string_lossy().into_owned(),
    };
    serve(config, services, plugins, shared, sources, handover)
}

/// A runtime on this thread for work before serving (or instead of it);
/// `None`, with the error printed, if there is none to be had.
pub(crate) fn current_thread_runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: cannot start a runtime: {e}"))
        .ok()
}

/// Where config and plugins are read from again on reload.
struct Sources {
    config_path: Option<std::path::PathBuf>,
    plugins_dir: std::path::PathBuf,
    cache_dir: Option<std::path::PathBuf>,
}

/// A zero-downtime upgrade: the new process takes the listening sockets
/// over a Unix socket from the old one, which sends them on SIGQUIT.
struct Handover {
    take_over: bool,
    socket: String,
}

fn serve(
    config: Config,
    services: Services,
    plugins: PluginSet,
    shared: Arc<Shared>,
    sources: Sources,
    handover: Handover,
) -> ! {
    crate::metrics::mark_start();
    let threads = config.worker_threads();
    // `shutdown` decides when the process exits: as soon as no request is
    // under way, or at the end of the grace period. Pingora's own grace
    // period (a fixed sleep) outlasts it, so it never cuts requests first.
    let grace = config.shutdown_grace;
    let conf = ServerConf {
        threads,
        work_stealing: config.work_stealing,
        grace_period_seconds: Some(grace.as_secs() + 2),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: handover.socket,
        // Seconds the new process waits for the old one's sockets (time for
        // an operator to send SIGQUIT after it says it is waiting), and the
        // old one tries to hand them over (vendor/pingora-core reads this).
        upgrade_sock_connect_accept_max_retries: Some(30),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: handover.take_over,
        ..Opt::default()
    };
    if opt.upgrade {
        tracing::info!(
            socket = %conf.upgrade_sock,
            "waiting for the running kavro-host's listening sockets: send it SIGQUIT"
        );
    }
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let listen = config.listen.clone();
    let tls_listen = config
        .tls
        .as_ref()
        .map(|t| t.listen.clone())
        .unwrap_or_default();
    let acme_at_start = config.tls.as_ref().is_some_and(|t| t.acme.is_some());
    let proxied = crate::config::resolve_listeners(&config.proxy_protocol);
    let admin_addr = config.admin.clone();
    let h2c = config.h2c;
    let client = config.client;
    let plugin_count = plugins.plugins.len();
    let active = Arc::new(ArcSwap::from_pointee(Active::new(
        config, services, plugins,
    )));

    let reloader = Arc::new(Reloader::new(
        sources.config_path,
        sources.plugins_dir,
        sources.cache_dir,
        shared.clone(),
        active.clone(),
    ));
    reloader.reload_when_optimized();
    if let Err(e) = reloader.on_sighup() {
        tracing::error!("cannot listen for SIGHUP, reload with POST /reload instead: {e}");
    }
    match reloader.watch_files() {
        Ok(watch) => {
            server.add_service(pingora_core::services::background::background_service(
                "kavro-watch",
                watch,
            ));
        }
        Err(e) => {
            tracing::error!(
                "cannot watch for file changes, reload with SIGHUP or POST /reload: {e:#}"
            )
        }
    }

    server.add_service(pingora_core::services::background::background_service(
        "kavro-checks",
        crate::upstream::probe::Prober {
            active: active.clone(),
        },
    ));

    let acme = Arc::new(Acme::default());
    let hub = shared.realtime.clone();
    let compressed = Arc::new(crate::compression::Store::new(
        active.load().config.compression_memory_bytes,
    ));
    let mut proxy = pingora_proxy::http_proxy_service_with_name(
        &server.configuration,
        Kavro {
            active: active.clone(),
            cache: shared.cache.clone(),
            acme: acme.clone(),
            hub: hub.clone(),
            compressed: compressed.clone(),
        },
        "kavro",
    );
    if let Some(app) = proxy.app_logic_mut() {
        let mut opts = HttpServerOptions::default();
        opts.h2c = h2c;
        opts.header_timeout = Some(client.header_timeout);
        // Reuses after the first request.
        opts.keepalive_request_limit = Some(client.max_requests_per_connection - 1);
        opts.connection_gate = Some(Arc::new(crate::protect::connections::PerAddress::new(
            active.clone(),
        )));
        app.server_options = Some(opts);
    }
    for addr in &listen {
        proxy.add_tcp(addr);
    }
    if !tls_listen.is_empty() {
        let resolver = Arc::new(Resolver::new(active.clone(), acme.clone()));
        for addr in &tls_listen {
            match crate::tls::listener_settings(resolver.clone()) {
                Ok(settings) => proxy.add_tls_with_settings(addr, None, settings),
                Err(e) => {
                    eprintln!("error: cannot set up TLS on {addr}: {e}");
                    crate::shutdown::exit(1)
                }
            }
        }
        server.add_service(pingora_core::services::background::background_service(
            "kavro-acme",
            AcmeService {
                acme: acme.clone(),
                active: active.clone(),
            },
        ));
        server.add_service(pingora_core::services::background::background_service(
            "kavro-certs",
            CertWatch {
                active: active.clone(),
                reloader: reloader.clone(),
            },
        ));
    }
    let challenge = (acme_at_start && !tls_listen.is_empty()).then(|| {
        (
            crate::config::resolve_listeners(&tls_listen),
            AlpnChallenge { acme: acme.clone() },
        )
    });
    if !proxied.is_empty() || challenge.is_some() {
        proxy
            .endpoints()
            .set_pre_tls_callback(Arc::new(PreHandshake {
                active: active.clone(),
                proxied,
                challenge,
            }));
    }
    server.add_service(proxy);
    server.add_services(shared.services());
    if let Some(cluster) = shared.cache.fleet.clone() {
        server.add_service(pingora_core::services::background::background_service(
            "kavro-cluster",
            crate::cluster::FleetWatch {
                cluster,
                hub: shared.realtime.clone(),
                cache: shared.cache.clone(),
            },
        ));
    }

    if let Some(addr) = &admin_addr {
        let mut admin = pingora_core::services::listening::Service::new(
            "kavro-admin".to_string(),
            Admin {
                active: active.clone(),
                reloader,
                cache: shared.cache.clone(),
                acme,
                hub,
                compressed,
            },
        );
        admin.add_tcp(addr);
        server.add_service(admin);
    }

    tracing::info!(
        event = "server_start",
        version = env!("CARGO_PKG_VERSION"),
        listen = ?listen,
        tls = ?tls_listen,
        admin = ?admin_addr,
        threads,
        plugins = plugin_count,
        "kavro-host serving"
    );
    let phases = server.watch_execution_phase();
    server.run(RunArgs {
        shutdown_signal: Box::new(crate::shutdown::Signals::new(grace, active, phases)),
    });
    crate::shutdown::exit(0)
}
