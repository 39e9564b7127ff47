//! The request pipeline on Pingora's `ProxyHttp`. Both kinds of response
//! share the request side, and the last steps of the response side are
//! written once, in `response`:
//!
//! ```text
//! request_filter   prime (global, then the route's) → route → cache lookup
//!                  → prepare → the route's action
//!
//! A response Kavro produces (respond, redirect, static, FastCGI, a
//! plugin's reply, a cache hit, an error): `send`
//!                  present over the whole body → cache store
//!                  → x-kavro-cache, x-request-id → package → write
//!
//! A proxied response (proxy, or prepare's forward)
//!   upstream_peer, upstream_request_filter → the upstream
//!   response_filter        cache begins collecting → x-kavro-cache,
//!                          x-request-id → package → the head is written
//!   response_body_filter   body held back → present at its end
//!                          → cache store → the body is written
//!
//! logging          metrics → instances back to their pools → post: queued
//!                  for a batch (post_queue), or, when it continues the
//!                  request's state, spawned on the request's instances
//! ```
//!
//! A proxied head goes out before its body has arrived, so there package
//! runs before present and present may no longer change the head.
//!
//! Every hook that calls a plugin is async: a call yields its worker at
//! each epoch tick and may move to the slow lane, which needs the runtime
//! to go on polling, so nothing here may run one under a blocking executor.
//! Pingora 0.9's response body filter is synchronous; Kavro's patch of it
//! (vendor/pingora-proxy) makes it async, and present at the end of a
//! proxied body is awaited there. The one synchronous hook left, `new_ctx`,
//! waits on nothing.

mod caching;
mod compressing;
mod context;
pub(crate) mod phases;
pub(crate) mod post_queue;
mod response;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use tokio::io::AsyncReadExt;

use caching::{CacheStatus, Refresh};
pub use context::Ctx;
use context::{PresentBuffer, Refusal};
use phases::PrepareResult;

use crate::actions::fastcgi::CgiRequest;
use crate::actions::proxy::{clean_upstream_response, prepare_upstream_request, ForwardedFor};
use crate::actions::{Body, Produced};
use crate::cache::ResponseCache;
use crate::plugin::bindings::types::Completion;
use crate::plugin::call::Finished;
use crate::plugin::Phase;
use crate::realtime::{connection, publish, Hub};
use crate::routing::{normalize_host, Match, RouteAction};
use crate::shutdown::InFlight;
use crate::tls::acme::Acme;
use crate::tls::redirect::ACME_CHALLENGE;
use crate::upstream::admission::Refused;
use crate::Active;

use response::X_REQUEST_ID;

/// Every request gets a number unique within this process.
static SEQ: AtomicU64 = AtomicU64::new(1);

pub struct Kavro {
    pub active: Arc<ArcSwap<Active>>,
    /// Outlives config and plugin swaps.
    pub cache: Arc<ResponseCache>,
    /// ACME's challenges, answered before routes and plugins.
    pub acme: Arc<Acme>,
    /// The realtime hub's connections and groups; outlives swaps too.
    pub hub: Arc<Hub>,
    /// Compressed forms of static files and stored responses.
    pub compressed: Arc<crate::compression::Store>,
}

/// A client-supplied request id is kept only if it is short and printable.
fn usable_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; 32];
    let id = uuid::Uuid::new_v4().simple().encode_lower(&mut buf);
    HeaderValue::from_str(id).expect("hex digits")
}

/// The request's id: the client's, if usable, else a new one, set on the
/// request so that plugins and the upstream see it.
pub(crate) fn request_id(req: &mut RequestHeader) -> HeaderValue {
    match req
        .headers
        .get(&X_REQUEST_ID)
        .filter(|v| usable_request_id(v))
    {
        Some(id) => id.clone(),
        None => {
            let id = new_request_id();
            req.insert_parsed_header(&X_REQUEST_ID, "x-request-id", id.clone());
            id
        }
    }
}

pub fn request_host(req: &RequestHeader) -> Cow<'_, str> {
    req.headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.host())
        .map_or(Cow::Borrowed(""), normalize_host)
}

impl Kavro {
    /// Writes a response the host produced: present (buffered bodies),
    /// cache store, headers and package, then the bytes.
    async fn send(&self, session: &mut Session, ctx: &mut Ctx, mut p: Produced) -> Result<bool> {
        ctx.cache.invalidate_after(&self.cache, &p.head);
        if let Some(stored) = ctx
            .cache
            .stored_instead(&self.cache, session.req_header(), &p.head)
        {
            p = stored;
        }
        // A stored response is as present left it.
        if !ctx.cache.answered_from_store() {
            response::present_produced(ctx, session.req_header_mut(), &mut p).await?;
        }
        let failed = ctx.any_failed();
        ctx.cache
            .store_produced(&self.cache, session.req_header(), &p, failed);
        if let Err(err) = response::finish_head(ctx, session.req_header_mut(), &mut p.head).await {
            p = err;
        }

        let head_only = session.req_header().method == http::Method::HEAD;
        let coding = compressing::choose(ctx, session.req_header(), &mut p.head);
        let mut encoder = None;
        if let (Some(coding), false) = (coding, head_only) {
            let settings = ctx.active.config.compression.clone().expect("chosen");
            let identity = p.identity.as_deref();
            let body = std::mem::replace(&mut p.body, Body::Empty);
            let store = &self.compressed;
            // Boxed: its state would otherwise enlarge every request's future.
            (p.body, encoder) = Box::pin(compressing::produced(
                store, &settings, coding, body, identity,
            ))
            .await?;
            match &p.body {
                Body::Bytes(b) => {
                    let _ = p
                        .head
                        .insert_header(header::CONTENT_LENGTH, b.len().to_string());
                }
                _ => chunked(session, &mut p.head),
            }
        }
        let empty = head_only || matches!(p.body, Body::Empty);
        session.write_response_header(p.head, empty).await?;
        if empty {
            return Ok(true);
        }
        match p.body {
            Body::Empty => {}
            Body::Bytes(b) => {
                ctx.bytes_sent += b.len() as u64;
                session.write_response_body(Some(b), true).await?;
            }
            Body::File { mut file, len } => {
                let mut left = len;
                while left > 0 {
                    let mut buf = BytesMut::with_capacity((left as usize).min(64 * 1024));
                    let n = file.read_buf(&mut buf).await.map_err(|e| {
                        Error::because(ErrorType::ReadError, "reading a static file", e)
                    })?;
                    if n == 0 {
                        return Error::e_explain(ErrorType::ReadError, "static file shrank");
                    }
                    left = left.saturating_sub(n as u64);
                    let mut out = buf.freeze();
                    if let Some(e) = encoder.as_mut() {
                        out = e
                            .encode(&out, left == 0)
                            .map_err(|e| compressing::failed(&self.compressed, e))?;
                    }
                    ctx.bytes_sent += out.len() as u64;
                    session.write_response_body(Some(out), left == 0).await?;
                }
            }
        }
        Ok(true)
    }
}

impl Kavro {
    /// What is answered before routes and plugins: an ACME HTTP-01
    /// challenge, and, when TLS is on, the redirect of plain HTTP.
    async fn before_routes(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        active: &Active,
    ) -> Option<Result<bool>> {
        let path = session.req_header().uri.path();
        if let Some(token) = path.strip_prefix(ACME_CHALLENGE) {
            let answer = self.acme.http_token(token)?;
            return Some(write_plain(session, ctx, Produced::text(200, answer)).await);
        }
        if ctx.https {
            return None;
        }
        let redirect = active.services.to_https.as_ref()?;
        let local = session.server_addr().and_then(|a| a.as_inet()).copied();
        if local.is_some_and(|l| crate::config::listens_on(&active.services.plain_opt_out, l)) {
            return None;
        }
        let req = session.req_header();
        let host = request_host(req);
        let p = if host.is_empty() {
            Produced::text(
                400,
                "400 Bad Request: this server redirects to HTTPS, which needs a Host header\n",
            )
        } else {
            redirect.produce(req, &host)
        };
        Some(self.send(session, ctx, p).await)
    }
}

/// Writes a response the host answers before routes and plugins: stamped
/// with the request id, with neither cache nor package.
async fn write_plain(session: &mut Session, ctx: &Ctx, mut p: Produced) -> Result<bool> {
    response::stamp(ctx, &mut p.head);
    session.write_response_header(p.head, false).await?;
    if let Body::Bytes(b) = p.body {
        session.write_response_body(Some(b), true).await?;
    }
    Ok(true)
}

/// Marks a head whose body length is not known yet (HTTP/1.1 chunked).
fn chunked(session: &Session, resp: &mut ResponseHeader) {
    resp.remove_header(&header::CONTENT_LENGTH);
    if !session.is_http2() {
        let _ = resp.insert_header(header::TRANSFER_ENCODING, "chunked");
    }
}

/// The client's address for FastCGI: the peer's, or, behind a trusted
/// proxy, the client it names with the proxy's port.
fn client_socket(session: &Session, ctx: &Ctx) -> Option<std::net::SocketAddr> {
    let peer = session.client_addr().and_then(|a| a.as_inet()).copied()?;
    Some(std::net::SocketAddr::new(
        ctx.client_ip.unwrap_or(peer.ip()),
        peer.port(),
    ))
}

fn body_over(max: u64) -> String {
    crate::protect::Refused::body_over(max).reason.into_owned()
}

/// Reads the whole request body, up to `max` bytes; over that, the 413 to send.
async fn read_body(
    session: &mut Session,
    max: usize,
) -> Result<std::result::Result<Bytes, Produced>> {
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > max {
            // The rest of the body is not read: this connection cannot be reused.
            session.set_keepalive(None);
            return Ok(Err(Produced::text(
                413,
                format!("413 Content Too Large: the limit is {max} bytes\n"),
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body.freeze()))
}

impl Kavro {
    /// Answers a request the edge protection refused, and logs why. The
    /// body, if any, is left unread: the connection cannot be reused.
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &Ctx,
        refused: crate::protect::Refused,
    ) -> Result<bool> {
        session.set_keepalive(None);
        let client = ctx
            .client_ip
            .map_or_else(|| "-".to_string(), |ip| ip.to_string());
        tracing::info!(
            event = "request_refused",
            request = ctx.request_id(),
            client,
            status = refused.status,
            "request refused: {}",
            refused.reason
        );
        write_plain(session, ctx, refused.answer()).await
    }
}

#[async_trait]
impl ProxyHttp for Kavro {
    type CTX = Ctx;

    /// None. Pingora's default adds its response compression, disabled,
    /// which still costs every request its context and filter calls.
    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    /// A stale entry's background refresh is a subrequest.
    fn allow_spawning_subrequest(&self, _session: &Session, _ctx: &Ctx) -> bool {
        true
    }

    /// The config and plugins a request starts with stay its own through a
    /// hot swap.
    fn new_ctx(&self) -> Ctx {
        Ctx::new(self.active.load_full(), Some(InFlight::enter()))
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let active = ctx.active.clone();
        ctx.seq = SEQ.fetch_add(1, Ordering::Relaxed);
        if active.plugins.path_scoped {
            // Before anything answers: even an early answer's package is
            // the scoped plugins' only where their paths say.
            ctx.scope_to(&active.plugins, session.req_header().uri.path());
        }

        // Checked before Kavro adds its own headers to the request.
        let downstream = session.as_downstream();
        let wire = match downstream {
            pingora_core::protocols::http::ServerSession::H1(h1) => {
                crate::protect::Wire::H1(|| h1.get_headers_raw_bytes())
            }
            _ => crate::protect::Wire::H2,
        };
        let limits = &active.config.head_limits;
        let checked = crate::protect::check(downstream.req_header(), wire, limits);
        ctx.id = request_id(session.req_header_mut());
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.client_ip = peer;
        let trusted = &active.config.trusted_proxies;
        if let (Some(peer), false) = (peer, trusted.is_empty()) {
            let client = trusted.client(peer, &session.req_header().headers);
            ctx.client_ip = Some(client.ip);
            ctx.proxy_ip = client.via_proxy.then_some(peer);
        }
        ctx.https = crate::tls::is_tls(session);
        let head = match checked {
            Ok(head) => head,
            Err(refused) => return self.refuse(session, ctx, refused).await,
        };
        ctx.expects_continue = head.expects_continue;
        let client = &active.config.client;
        // Pingora keeps an HTTP/1.1 connection idle for ever, or for what
        // the client's Keep-Alive header asks: the server decides.
        if client.keepalive_timeout_s == 0 {
            session.set_keepalive(None);
        } else if session.get_keepalive().is_some() {
            session.set_keepalive(Some(client.keepalive_timeout_s));
        }
        session.set_read_timeout(Some(client.body_timeout));
        if crate::shutdown::draining() {
            // The answer says `Connection: close`: a client's next request
            // goes on a new connection, to the process that keeps serving,
            // not into one this process is about to close.
            session.set_keepalive(None);
        }
        if let Some(done) = self.before_routes(session, ctx, &active).await {
            return done;
        }
        if let Some(settings) = &active.config.publish {
            if publish::is_publish(settings, session.req_header()) {
                let p = match publish::refusal(settings, session.req_header()) {
                    Some(p) => p,
                    None => match read_body(session, publish::MAX_PUBLISH_BYTES).await? {
                        Ok(body) => publish::publish(&self.hub, &body),
                        Err(p) => p,
                    },
                };
                return write_plain(session, ctx, p).await;
            }
        }

        let set = &active.plugins;
        let max = active.config.present_max_bytes;
        // A background refresh carries a request prime has already seen.
        let refresh = Refresh::of_subrequest(session);
        let primed = refresh.is_some();
        if let Some(refresh) = refresh {
            ctx.cache.set_refresh(refresh);
        }
        if !primed && !set.global[Phase::Prime].is_empty() {
            let req = session.req_header_mut();
            if let Some(p) = phases::run_prime(set, &set.global[Phase::Prime], ctx, req, max).await
            {
                return self.send(session, ctx, p).await;
            }
        }

        let found = {
            let req = session.req_header();
            let local_addr = session.server_addr().and_then(|a| a.as_inet()).copied();
            active.services.routes.find_on(
                local_addr,
                &request_host(req),
                req.uri.path(),
                &req.method,
            )
        };
        let route = match found {
            Match::Found(r) => r,
            Match::MethodNotAllowed => {
                return self
                    .send(session, ctx, Produced::text(405, "method not allowed\n"))
                    .await
            }
            Match::NotFound => {
                return self
                    .send(session, ctx, Produced::text(404, "not found\n"))
                    .await
            }
        };
        ctx.route = Some(route.index);
        if set.path_scoped {
            // Prime may have rewritten the path.
            ctx.scope_to(set, session.req_header().uri.path());
        }
        // A background refresh's answer goes to the cache, not to a client.
        ctx.compress = route.compress && !primed;
        ctx.client_cache = route.client_cache.clone();
        if let Some(max) = route.max_request_bytes {
            if head.content_length.is_some_and(|n| n > max) {
                let refused = crate::protect::Refused::body_over(max);
                return self.refuse(session, ctx, refused).await;
            }
            ctx.body_limit = Some(max);
        }
        let chains = set.chains(ctx.route);
        if route.cache.is_some() {
            ctx.cache.status = Some(CacheStatus::Bypass);
        }

        if !primed && !chains[Phase::Prime].is_empty() {
            let req = session.req_header_mut();
            if let Some(p) = phases::run_prime(set, &chains[Phase::Prime], ctx, req, max).await {
                return self.send(session, ctx, p).await;
            }
            if set.path_scoped {
                // The route's prime may have rewritten the path too.
                ctx.scope_to(set, session.req_header().uri.path());
            }
        }

        if let Some(policy) = &route.cache {
            let req = session.req_header();
            let mut host = request_host(req);
            if let Some(s) = route.server {
                // A server's entries are its own, whatever the host.
                host = Cow::Owned(format!("{host}\nserver={s}"));
            }
            let https = ctx.https;
            if let Some(p) = ctx
                .cache
                .lookup(&self.cache, req, &host, https, policy)
                .await
            {
                if let Some(refresh) = ctx.cache.take_refresh() {
                    refresh.spawn(&self.cache, session);
                }
                return self.send(session, ctx, p).await;
            }
        }

        ctx.route_timeouts = route.timeouts;
        ctx.route_retries = route.retries;
        if !chains[Phase::Prepare].is_empty() {
            let services = &active.services;
            let known = |name: &str| services.upstream(name).is_some();
            let req = session.req_header_mut();
            match phases::run_prepare(set, &chains[Phase::Prepare], ctx, req, max, &known).await {
                PrepareResult::Declined => {}
                PrepareResult::Respond(p) => return self.send(session, ctx, p).await,
                PrepareResult::Forward {
                    upstream,
                    uri,
                    headers,
                } => {
                    ctx.upstream = services.upstream(&upstream).cloned();
                    ctx.forward_uri = uri;
                    ctx.forward_headers = headers;
                    return Ok(false);
                }
            }
        }

        match &route.action {
            RouteAction::Proxy(up) => {
                ctx.upstream = Some(up.clone());
                Ok(false)
            }
            RouteAction::Static(root) => {
                let precompressed = !ctx.any_turn(&chains[Phase::Present]);
                let max = ctx.active.config.present_max_bytes;
                let served = root.serve(session.req_header(), precompressed, max).await;
                let p = match served.directives {
                    Some(d) => {
                        response::directed(ctx, session.req_header_mut(), served.produced, &d).await
                    }
                    None => served.produced,
                };
                self.send(session, ctx, p).await
            }
            RouteAction::Respond(r) => {
                let p = r.produce();
                self.send(session, ctx, p).await
            }
            RouteAction::Redirect(r) => {
                let req = session.req_header();
                let p = r.produce(req, &request_host(req));
                self.send(session, ctx, p).await
            }
            RouteAction::FastCgi(f) => {
                let max = ctx.body_limit.map_or(f.max_request_bytes(), |route| {
                    f.max_request_bytes()
                        .min(usize::try_from(route).unwrap_or(usize::MAX))
                });
                if std::mem::take(&mut ctx.expects_continue) {
                    session.write_continue_response().await?;
                }
                let body = match read_body(session, max).await? {
                    Ok(b) => b,
                    Err(p) => return self.send(session, ctx, p).await,
                };
                let req = session.req_header();
                let host = request_host(req);
                let p = f
                    .serve(CgiRequest {
                        req,
                        body,
                        host: &host,
                        client: client_socket(session, ctx),
                        server: session.server_addr().and_then(|a| a.as_inet()).copied(),
                        https: ctx.https,
                        http2: session.is_http2(),
                        request_id: ctx.request_id(),
                    })
                    .await;
                self.send(session, ctx, p).await
            }
            RouteAction::Realtime(rt) => {
                let req = session.req_header();
                let http2 = session.is_http2();
                let opened =
                    connection::open(&self.hub, rt, req, http2, ctx.client_ip, ctx.request_id());
                let mut accepted = match opened.await {
                    Ok(a) => a,
                    Err(p) => return self.send(session, ctx, p).await,
                };
                let req = session.req_header_mut();
                let packaged = response::finish_head(ctx, req, &mut accepted.head).await;
                let p = match packaged {
                    Ok(()) if accepted.head.status == 101 => None,
                    Ok(()) => Some(Produced::text(
                        500,
                        "500 Internal Server Error: a package plugin changed the 101 of a \
                         realtime handshake\n",
                    )),
                    Err(p) => Some(p),
                };
                if let Some(p) = p {
                    accepted.abandon(self.hub.clone());
                    return write_plain(session, ctx, p).await;
                }
                let idle = ctx.active.config.client.websocket_idle_timeout;
                accepted.run(self.hub.clone(), session, idle).await?;
                Ok(true)
            }
            RouteAction::None => {
                self.send(session, ctx, Produced::text(404, "not found\n"))
                    .await
            }
        }
    }

    /// Waits for a slot when the upstream limits requests at once (once per
    /// request, kept across retries), then picks a target in rotation
    /// that this request has not tried.
    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let up = ctx
            .upstream
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream chosen"))?;
        if let (Some(gate), None) = (&up.gate, &ctx.slot) {
            match gate.enter(&up.counters).await {
                Ok(slot) => ctx.slot = Some(slot),
                Err(why) => {
                    ctx.refused = Some(Refusal::Admission(why));
                    return Err(Error::explain(
                        ErrorType::HTTPStatus(503),
                        format!("upstream `{}` is at max_inflight: {why:?}", up.name),
                    ));
                }
            }
        }
        // Before a target is chosen: a spent total takes no target's trial.
        let timeouts = up
            .attempt_timeouts(ctx.route_timeouts.as_ref(), ctx.started.elapsed())
            .map_err(|total| {
                Error::explain(
                    ErrorType::ConnectTimedout,
                    format!(
                        "the request's total time with upstream `{}` ({total:?}) is spent",
                        up.name
                    ),
                )
            })?;
        let key = up.hash_key(session.req_header(), &ctx.forward_headers, ctx.client_ip);
        let Some(chosen) = up.peer(&ctx.tried, key.as_deref()) else {
            ctx.refused = Some(Refusal::NoTarget);
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                format!("every target of upstream `{}` is out of rotation", up.name),
            ));
        };
        let mut peer = chosen.peer;
        if let Some(t) = timeouts {
            crate::upstream::apply_timeouts(&t, &mut peer);
        }
        let websocket = session
            .req_header()
            .headers
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
        if websocket {
            // Once upgraded, a read waits as long as the connection may idle.
            let idle = ctx.active.config.client.websocket_idle_timeout;
            peer.options.read_timeout = Some(idle);
        }
        ctx.attempts += 1;
        ctx.busy = Some(chosen.target.busy());
        ctx.target = Some(chosen.target);
        ctx.upstream_host = chosen.host;
        Ok(peer)
    }

    /// A target that refused or dropped the connection counts a failure;
    /// the request goes to another target while there is one left to try
    /// (nothing was sent yet), within the attempts and, past a first
    /// refusal, the retry budget.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.busy = None;
        e.set_retry(false);
        let refused = matches!(
            e.etype(),
            pingora_core::ErrorType::ConnectRefused | pingora_core::ErrorType::ConnectNoRoute
        );
        if let (Some(target), Some(up)) = (ctx.target.take(), ctx.upstream.clone()) {
            target.failed(&up.eject);
            ctx.tried.push(target);
            let retry = ctx.tried.len() < up.target_count()
                && up.may_retry_connect(
                    ctx.attempts,
                    ctx.tried.len(),
                    refused,
                    ctx.route_retries.as_ref(),
                    &mut ctx.retrying,
                );
            e.set_retry(retry);
        }
        e
    }

    /// A connection that failed after it was made (reset, closed, timed
    /// out) counts against the target, unless it was the client's doing.
    /// Only an idempotent request whose body is still at hand and whose
    /// answer has not begun is retried: on a reused connection (Pingora's
    /// rule), or on a new one when the upstream retries reads; always
    /// within the upstream's attempts and retry budget.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let upstream_side = e.esource() == &pingora_core::ErrorSource::Upstream;
        let mut failed_target = None;
        // A kept-alive connection the target had closed meanwhile is no
        // failure of the target; the retry on a new one tells.
        if upstream_side && !client_reused {
            if let (Some(target), Some(up)) = (ctx.target.take(), ctx.upstream.as_ref()) {
                target.failed(&up.eject);
                failed_target = Some(target);
            }
        }
        ctx.busy = None;
        let mut e = e.more_context(format!("Peer: {peer}"));
        let repeatable = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none();
        let Some(up) = ctx.upstream.clone().filter(|_| repeatable) else {
            e.set_retry(false);
            return e;
        };
        // Pingora's rule: a connection taken from the pool may have been
        // closed by the target meanwhile; the same request on a new one is safe.
        e.retry.decide_reuse(client_reused);
        let reads = up.retries.with(ctx.route_retries.as_ref()).reads;
        if !e.retry() && reads && upstream_side {
            // A read that failed on a new connection: another target, if
            // one is left that this request has not tried.
            ctx.tried.extend(failed_target);
            e.set_retry(ctx.tried.len() < up.target_count());
        }
        if e.retry() {
            let retry = up.may_retry(ctx.attempts, ctx.route_retries.as_ref(), &mut ctx.retrying);
            e.set_retry(retry);
        }
        e
    }

    /// The target answered: a success for its health, or a failure for a
    /// 5xx where its upstream counts those.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if upstream_response.status.is_informational() {
            return Ok(());
        }
        if let (Some(target), Some(up)) = (ctx.target.take(), ctx.upstream.as_ref()) {
            if up.eject.on_5xx && upstream_response.status.is_server_error() {
                target.failed(&up.eject);
            } else {
                target.succeeded();
            }
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (Some(max), Some(chunk)) = (ctx.body_limit, body.as_ref()) {
            ctx.body_read += chunk.len() as u64;
            if ctx.body_read > max {
                return Error::e_explain(ErrorType::HTTPStatus(413), body_over(max));
            }
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let scheme = if ctx.https { "https" } else { "http" };
        let forwarded = match (ctx.proxy_ip, ctx.client_ip) {
            (Some(proxy), _) => ForwardedFor::Append(proxy),
            (None, Some(client)) => ForwardedFor::Client(client),
            (None, None) => ForwardedFor::Nobody,
        };
        prepare_upstream_request(upstream_request, forwarded, scheme);
        if ctx.expects_continue {
            // Kavro reads the body, so Kavro answers the expectation, once
            // the upstream is reached (a retry builds this request again).
            upstream_request.remove_header(&header::EXPECT);
            if session.response_written().is_none() {
                session.write_continue_response().await?;
            }
        }
        if let Some(host) = ctx.upstream_host.clone() {
            upstream_request.insert_header(header::HOST, host)?;
        }
        // Kept, not taken: a retry builds the upstream request again.
        if let Some(uri) = &ctx.forward_uri {
            upstream_request.set_uri(uri.clone());
        }
        for (k, v) in &ctx.forward_headers {
            let _ = upstream_request.insert_header(k.clone(), v.clone());
        }
        ctx.cache.add_conditions(upstream_request);
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        clean_upstream_response(resp);
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // The client's side of an upgraded connection idles as long.
            let idle = ctx.active.config.client.websocket_idle_timeout;
            session.set_read_timeout(Some(idle));
        }
        ctx.cache.invalidate_after(&self.cache, resp);
        let req = session.req_header();
        if let Some(stored) = ctx.cache.begin_streamed(&self.cache, req, resp) {
            // A stored response (or an error) goes instead of the upstream's.
            *resp = *stored.head;
            ctx.body_replaced = true;
            ctx.replaced_identity = stored.identity;
            ctx.replaced_body = match stored.body {
                Body::Bytes(b) => Some(b),
                _ => None,
            };
        }
        response::stamp(ctx, resp);

        // Present only on bodies of a known length that fits the buffer;
        // larger and streaming bodies pass through untouched.
        let max = ctx.active.config.present_max_bytes;
        let len = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let bodiless = session.req_header().method == http::Method::HEAD
            || matches!(resp.status.as_u16(), 100..=199 | 204 | 304);
        let presents = ctx.any_turn(&ctx.active.plugins.chains(ctx.route)[Phase::Present]);
        if presents && !bodiless && !ctx.body_replaced {
            // An empty body has nothing to present, and no body task.
            if let Some(len) = len.filter(|&l| l > 0 && l <= max) {
                ctx.present = Some(Box::new(PresentBuffer {
                    body: BytesMut::with_capacity(len),
                    limit: max,
                    head: resp.clone(),
                }));
                chunked(session, resp);
            }
        }

        if let Err(err) = response::package(ctx, session.req_header_mut(), resp).await {
            // The upstream's body is already on its way: the error's head
            // goes instead of the upstream's, and the body filter sends the
            // error's body in place of the upstream's. Without a length, so
            // that an upstream body that never comes still ends the
            // response cleanly.
            *resp = *err.head;
            chunked(session, resp);
            ctx.present = None;
            ctx.cache.abandon();
            ctx.error = Some("package failed".into());
            ctx.body_replaced = true;
            ctx.replaced_identity = None;
            ctx.replaced_body = match err.body {
                Body::Bytes(b) => Some(b),
                _ => None,
            };
        }
        if let Some(coding) = compressing::choose(ctx, session.req_header(), resp) {
            if ctx.body_replaced {
                // Whole already: compressed here, sent with its length.
                let settings = ctx.active.config.compression.clone().expect("chosen");
                let identity = ctx.replaced_identity.take();
                let whole = ctx.replaced_body.take().unwrap_or_default();
                let store = &self.compressed;
                let id = identity.as_deref();
                let out = Box::pin(compressing::whole(store, &settings, coding, id, whole)).await?;
                let _ = resp.insert_header(header::CONTENT_LENGTH, out.len().to_string());
                resp.remove_header(&header::TRANSFER_ENCODING);
                ctx.replaced_body = Some(out);
            } else {
                chunked(session, resp);
                ctx.compressing = Some(compressing::streaming(ctx, coding)?);
            }
        }
        Ok(())
    }

    /// Async through Kavro's Pingora patch (vendor/pingora-proxy): the
    /// present chain at the end of a streamed body is awaited here like
    /// every other phase, so its calls yield, move to the slow lane and
    /// check out instances without ever blocking the worker thread.
    async fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.body_replaced {
            // Once, in place of the upstream's body.
            *body = ctx.replaced_body.take();
            if let Some(b) = body.as_ref() {
                ctx.bytes_sent += b.len() as u64;
            }
            return Ok(None);
        }
        // The cache takes the body as present leaves it, before compression.
        let mut collect = ctx.cache.collecting();
        if let Some(buf) = ctx.present.as_mut() {
            if let Some(chunk) = body.take() {
                if buf.body.len() + chunk.len() > buf.limit {
                    // More than announced: give up on present, pass it all through.
                    let mut all = std::mem::take(&mut buf.body);
                    all.extend_from_slice(&chunk);
                    ctx.present = None;
                    *body = Some(all.freeze());
                    // What was held back is not in the cache's copy.
                    ctx.cache.abandon();
                    collect = false;
                } else {
                    buf.body.extend_from_slice(&chunk);
                }
            }
            if ctx.present.is_some() && !end_of_stream {
                return Ok(None);
            }
            if let Some(mut buf) = ctx.present.take() {
                let input = buf.body.freeze();
                let req = session.req_header_mut();
                let out = response::present(ctx, req, &mut buf.head, input, false).await;
                *body = Some(match out {
                    Ok(b) => b,
                    Err(err) => {
                        ctx.error = Some("present failed".into());
                        match err.body {
                            Body::Bytes(b) => b,
                            _ => Bytes::new(),
                        }
                    }
                });
            }
        }
        if collect {
            let failed = ctx.error.is_some() || ctx.any_failed();
            ctx.cache.collect_streamed(
                &self.cache,
                session.req_header(),
                body.as_ref(),
                end_of_stream,
                failed,
            );
        }
        compressing::piece(ctx, &self.compressed, body, end_of_stream)?;
        if let Some(b) = body.as_ref() {
            ctx.bytes_sent += b.len() as u64;
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        use ErrorType::*;
        let upstream = ctx
            .upstream
            .as_ref()
            .map_or("-", |u| u.name.as_str())
            .to_string();
        let from_client = e.esource() == &pingora_core::ErrorSource::Downstream;
        let code = match e.etype() {
            HTTPStatus(code) => *code,
            ReadTimedout if from_client => 408,
            ConnectTimedout | ReadTimedout | WriteTimedout => 504,
            _ => match e.esource() {
                pingora_core::ErrorSource::Upstream => 502,
                pingora_core::ErrorSource::Downstream => match e.etype() {
                    WriteError | ReadError | ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        ctx.error = Some(e.to_string());
        if matches!(
            e.etype(),
            TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError
        ) {
            // The reason (unknown issuer, expired, wrong name) is rustls'
            // words in the error's context.
            tracing::warn!(upstream = %upstream, "TLS to the upstream failed: {e}");
        }
        let informational = session
            .response_written()
            .is_none_or(|r| r.status.is_informational());
        if informational && (500..600).contains(&code) {
            // RFC 5861 §4: the origin failed; a stale entry may answer.
            if let Some(p) = ctx.cache.stale_on_error(&self.cache) {
                session.set_keepalive(None);
                let _ = self.send(session, ctx, p).await;
                return FailToProxy {
                    error_code: 200,
                    can_reuse_downstream: false,
                };
            }
        }
        // An error the host wrote is never stored; waiters stop waiting.
        ctx.cache.abandon();
        if matches!(code, 408 | 413) {
            tracing::info!(
                event = "request_refused",
                request = ctx.request_id(),
                status = code,
                "request refused: {e}"
            );
        }
        if code > 0 && informational {
            let body = match code {
                408 => "408 Request Timeout: the request body stopped arriving\n".to_string(),
                413 => format!("413 Content Too Large: {}\n", body_over(ctx.body_limit.unwrap_or(0))),
                502 => format!("502 Bad Gateway: upstream `{upstream}` could not be reached\n"),
                504 => {
                    format!("504 Gateway Timeout: upstream `{upstream}` did not answer in time\n")
                }
                400 => "400 Bad Request\n".to_string(),
                503 => match ctx.refused {
                    Some(Refusal::Admission(Refused::QueueFull)) => format!(
                        "503 Service Unavailable: upstream `{upstream}` is at its limit and its queue is full; retry later\n"
                    ),
                    Some(Refusal::Admission(Refused::QueueTimeout)) => format!(
                        "503 Service Unavailable: upstream `{upstream}` is at its limit and the wait ran out; retry later\n"
                    ),
                    _ => format!(
                        "503 Service Unavailable: every target of upstream `{upstream}` is failing; retry later\n"
                    ),
                },
                c => format!("{c} error\n"),
            };
            // This connection is not reused; the response must say so, or
            // a client may send its next request into a closing socket.
            session.set_keepalive(None);
            let mut p = Produced::text(code, body);
            let wait = match (&ctx.upstream, ctx.refused) {
                (Some(u), Some(Refusal::NoTarget)) => Some(u.retry_after()),
                // A queue drains within its timeout, or sheds again.
                (Some(u), Some(Refusal::Admission(_))) => {
                    u.gate.as_ref().map(|g| g.limits().queue_timeout)
                }
                _ => None,
            };
            if let Some(wait) = wait.filter(|_| code == 503) {
                p.retry_after(wait);
            }
            let _ = self.send(session, ctx, p).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        ctx.leave_upstream();
        // A response that did not complete is not stored; waiters stop waiting.
        ctx.cache.abandon();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        crate::metrics::record_request(status, ctx.started.elapsed());
        let active = ctx.active.clone();
        active.health.record(status >= 500 || ctx.any_failed());
        let set = &active.plugins;
        // A request that never reached request_filter (its head did not
        // parse) has no id and met no plugin: post has nothing to see.
        if !ctx.started() || !ctx.any_turn(&set.chains(ctx.route)[Phase::Post]) {
            phases::release(set, ctx);
            return;
        }
        let done = Completion {
            status,
            duration_us: ctx.started.elapsed().as_micros() as u64,
            bytes_sent: ctx.bytes_sent,
            upstream: ctx.upstream.as_ref().map(|u| u.name.clone()),
            error: e.map(|e| e.to_string()).or_else(|| ctx.error.clone()),
        };
        let req = session.req_header().clone();
        let resp = session
            .response_written()
            .cloned()
            .unwrap_or_else(|| ResponseHeader::build(status.max(100), Some(0)).expect("valid"));
        // A chain that continues no plugin's state of this request (its
        // plugins export post alone, say) runs batched with other
        // requests'; one that does runs on the instances the request holds.
        let chain = &set.chains(ctx.route)[Phase::Post];
        let holds =
            |i: usize| ctx.has_failed(i) || ctx.instances.get(i).is_some_and(Option::is_some);
        if !chain.iter().any(|&i| holds(i)) {
            phases::release(set, ctx);
            let finished = Finished {
                seq: ctx.seq,
                req,
                resp,
                info: ctx.info(),
                done,
            };
            post_queue::enqueue(post_queue::Pending {
                active: active.clone(),
                route: ctx.route,
                finished,
                in_flight: ctx.in_flight.take(),
            })
            .await;
            return;
        }
        let slot = active.services.post_slots.acquire().await;
        let owned = std::mem::replace(ctx, Ctx::new(active.clone(), None));
        phases::spawn_post(set.clone(), owned, req, resp, done, slot);
    }
}
