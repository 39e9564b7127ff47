//! What a validated config builds: a balancer for each upstream over its
//! resolved targets, and the route table with each route's action (a
//! FastCGI route gets its connection pool). Apart from validation, which
//! reads a file without network I/O: here names are resolved, once per
//! start or reload, and `kavro-host validate` runs this step too.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::actions::fastcgi::FastCgi;
use crate::actions::respond::Redirect;
use crate::config::{ActionSpec, Config, Diagnostic, Diagnostics};
use crate::realtime::RealtimeRoute;
use crate::routing::{RouteAction, RouteTable};
use crate::tls::certs::{CertStore, Certificate};
use crate::upstream::Upstream;

pub struct Services {
    pub upstreams: HashMap<String, Arc<Upstream>>,
    pub routes: RouteTable,
    /// The certificates of `[[tls.certificates]]`, read and checked.
    pub certs: CertStore,
    /// What plain requests get when TLS redirects them.
    pub to_https: Option<Redirect>,
    /// Plain listeners that opted out of the redirect.
    pub plain_opt_out: Vec<std::net::SocketAddr>,
    /// Post chains running at once (`server.post_concurrency`).
    pub post_slots: PostSlots,
}

/// Bounds the post calls running at once (a batch's, or one request's
/// chain). A completion that finds no room waits in Pingora's logging hook,
/// which holds its connection's next request: a post slower than the
/// responses it follows slows the clients, where taking every completion
/// would pile up tasks and instances until calls miss their deadlines and
/// completions are lost.
pub struct PostSlots {
    slots: Arc<tokio::sync::Semaphore>,
    limit: usize,
    /// Completions that found every slot taken and waited.
    waited: AtomicU64,
}

impl PostSlots {
    pub fn new(limit: usize) -> PostSlots {
        PostSlots {
            slots: Arc::new(tokio::sync::Semaphore::new(limit)),
            limit,
            waited: AtomicU64::new(0),
        }
    }

    /// A slot, held by the post chain until it ends; a completion that
    /// waits for one is counted.
    pub async fn acquire(&self) -> tokio::sync::OwnedSemaphorePermit {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return slot;
        }
        self.count_wait();
        self.slot().await
    }

    /// A slot, for a batch of completions already counted.
    pub async fn slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// A completion waited for room.
    pub fn count_wait(&self) {
        self.waited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// For `/diagnostics`: the limit, the chains running, and how many
    /// completions have waited for a slot (a count that keeps rising says
    /// post is slower than the traffic: raise the limit, or lighten post).
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "limit": self.limit,
            "running": self.limit - self.slots.available_permits(),
            "waited": self.waited.load(Ordering::Relaxed),
        })
    }
}

impl Services {
    pub fn build(config: &Config) -> Result<Services, Diagnostics> {
        let mut errors = Vec::new();
        let mut error =
            |position: Option<(usize, usize)>, field: String, message: String, hint: &str| {
                errors.push(Diagnostic {
                    file: config.source.clone(),
                    position,
                    field,
                    message,
                    hint: hint.into(),
                })
            };
        // Pingora resolves these when it binds them, where a failure would
        // only end that listener's task.
        let tls_listen = config.tls.iter().flat_map(|t| &t.listen);
        let listeners = config
            .listen
            .iter()
            .map(|a| ("server.listen", a))
            .chain(tls_listen.map(|a| ("tls.listen", a)));
        for (field, addr) in listeners.chain(config.admin.iter().map(|a| ("admin.listen", a))) {
            if let Err(e) = addr.to_socket_addrs() {
                error(
                    None,
                    field.to_string(),
                    format!("cannot listen on `{addr}`: {e}"),
                    "use an address of this machine, e.g. \"127.0.0.1:8080\"",
                );
            }
        }
        let mut upstreams = HashMap::new();
        for (name, u) in &config.upstreams {
            // Each target resolved once, here: errors name the target, and
            // the balancer is built from what resolved.
            let mut resolved = Vec::with_capacity(u.targets.len());
            let mut unresolved = false;
            for (i, target) in u.targets.iter().enumerate() {
                match target.to_socket_addrs() {
                    Ok(addrs) => resolved.push((target.as_str(), addrs.collect::<Vec<_>>())),
                    Err(e) => {
                        unresolved = true;
                        error(
                            u.positions.get(i).copied(),
                            format!("upstreams.{name}.targets[{i}]"),
                            format!("`{target}` does not resolve: {e}"),
                            "targets are host:port pairs whose names resolve from this machine",
                        );
                    }
                }
            }
            if unresolved {
                continue;
            }
            match Upstream::new(name, u, &resolved) {
                Ok(up) => {
                    upstreams.insert(name.clone(), Arc::new(up));
                }
                Err(e) => error(
                    u.positions.first().copied(),
                    format!("upstreams.{name}.targets"),
                    format!("cannot use the targets: {e}"),
                    "targets are host:port pairs whose names resolve from this machine",
                ),
            }
        }
        let mut routes = Vec::new();
        for route in &config.routes {
            let action = match &route.action {
                ActionSpec::None => RouteAction::None,
                ActionSpec::Proxy(name) => match upstreams.get(name) {
                    Some(up) => RouteAction::Proxy(up.clone()),
                    // Its targets did not resolve: reported above.
                    None => continue,
                },
                ActionSpec::Static(s) => RouteAction::Static(s.clone()),
                ActionSpec::Respond(r) => RouteAction::Respond(r.clone()),
                ActionSpec::Redirect(r) => RouteAction::Redirect(r.clone()),
                ActionSpec::FastCgi(settings) => {
                    RouteAction::FastCgi(Arc::new(FastCgi::new((**settings).clone())))
                }
                ActionSpec::Realtime(s) => match upstreams.get(&s.backend) {
                    Some(up) => RouteAction::Realtime(Arc::new(RealtimeRoute {
                        backend: up.clone(),
                        path_on_backend: s.path_on_backend.clone(),
                        max_message_bytes: s.max_message_bytes,
                    })),
                    None => continue,
                },
            };
            routes.push(route.with_action(action));
        }
        let mut certs = CertStore::default();
        for c in config.tls.iter().flat_map(|t| &t.certificates) {
            match Certificate::load(&c.cert, &c.key) {
                Ok(cert) => certs.add(cert, c.names.as_deref()),
                Err((file, reason)) => error(
                    Some(c.position),
                    c.field.clone(),
                    format!("{}: {reason}", file.display()),
                    "the cert file holds the chain (leaf first) and the key file the leaf's \
                     private key, both PEM; relative paths start at the config file's folder",
                ),
            }
        }
        let plain_opt_out = crate::config::resolve_listeners(&config.no_redirect);
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        Ok(Services {
            upstreams,
            routes: RouteTable::new(routes).with_servers(config.servers.clone()),
            certs,
            to_https: config.tls.as_ref().and_then(crate::tls::redirect::to_https),
            plain_opt_out,
            post_slots: PostSlots::new(config.post_slots()),
        })
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_balancers_and_routes_from_the_config() {
        let text = "[upstreams.api]\ntargets = [\"127.0.0.1:9001\", \"localhost:9002\"]\n\
                    [[routes]]\nname = \"api\"\npath = \"/api/*\"\nproxy = \"api\"\n\
                    [[routes]]\nname = \"hi\"\npath = \"/*\"\nrespond = { body = \"hi\" }\n";
        let config = Config::parse("k.toml", text).unwrap();
        let services = Services::build(&config).unwrap();
        assert!(services.upstream("api").is_some());
        assert_eq!(services.routes.len(), 2);
        match services.routes.find("x", "/api/v1", &http::Method::GET) {
            crate::routing::Match::Found(r) => {
                assert!(matches!(r.action, RouteAction::Proxy(_)), "{r:?}")
            }
            other => panic!("{other:?}"),
        }
    }
}
