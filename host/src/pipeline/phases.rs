//! Running a phase chain: check out each plugin's instance once per
//! request, call it under its deadline, and apply its failure policy.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora_http::{RequestHeader, ResponseHeader};
use sync_wrapper::SyncWrapper;

use super::context::Ctx;
use crate::actions::{Body, Produced};
use crate::cache::Directive;
use crate::config::FailurePolicy;
use crate::plugin::bindings::{prepare, present, prime, types};
use crate::plugin::{Failure, FailureKind, Instance, Phase, Plugin, PluginSet};

/// What a failed plugin does to the request.
pub enum Verdict {
    /// fail-open: skip the plugin.
    Skip,
    /// fail-closed: answer with this error response.
    Fail(Produced),
}

/// Applies plugin `i`'s policy to a failure. The plugin is then left out of
/// the rest of this request: a second failure would only repeat the first.
fn verdict(set: &PluginSet, i: usize, ctx: &mut Ctx, phase: Phase, f: &Failure) -> Verdict {
    let plugin = &set.plugins[i];
    ctx.mark_failed(i);
    record_failure(plugin, phase, f, ctx.request_id());
    match plugin.settings.failure {
        FailurePolicy::FailOpen => Verdict::Skip,
        FailurePolicy::FailClosed => Verdict::Fail(failed_closed(&plugin.name, ctx.request_id())),
    }
}

/// Counts a plugin's failure on one request, and logs it.
pub(crate) fn record_failure(plugin: &Plugin, phase: Phase, f: &Failure, request_id: &str) {
    plugin.stats.failed(phase, f, request_id);
    crate::metrics::record_failure(&plugin.name, f.kind);
    // A back-off was logged once as it began, with the failures before it.
    if f.kind != FailureKind::Backoff {
        tracing::warn!(
            event = "plugin_failed",
            plugin = %plugin.name,
            phase = phase.name(),
            kind = f.kind.as_str(),
            request = request_id,
            "plugin failed: {}",
            // A traceback's lines stay one log line.
            crate::plugin::caps::log::escape_controls(&f.detail)
        );
    }
}

/// The response a fail-closed plugin's failure leaves.
pub(crate) fn failed_closed(plugin: &str, request_id: &str) -> Produced {
    Produced::text(
        500,
        format!("500 Internal Server Error: plugin `{plugin}` failed (request id {request_id})\n"),
    )
}

/// Checks out the request's instance of plugin `i` on its first turn.
async fn check_out(set: &PluginSet, ctx: &mut Ctx, i: usize) -> Result<(), Failure> {
    if ctx.instances.len() < set.plugins.len() {
        ctx.instances.resize_with(set.plugins.len(), || None);
    }
    if ctx.instances[i].is_none() {
        let mut inst = set.plugins[i].checkout().await?;
        inst.set_request_info(Some(ctx.info()));
        ctx.instances[i] = Some(SyncWrapper::new(inst));
    }
    let plugin = &set.plugins[i];
    plugin
        .stats
        .calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

pub(crate) fn header_list(
    list: Vec<types::Header>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Failure> {
    list.into_iter()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| Failure::bad_output(format!("invalid header name `{k}`")))?;
            let value = HeaderValue::from_str(&v)
                .map_err(|_| Failure::bad_output(format!("invalid value for header `{k}`")))?;
            Ok((name, value))
        })
        .collect()
}

/// Turns a plugin's reply into a response, refusing what HTTP cannot carry.
pub fn reply_to_produced(reply: types::Reply, max_body: usize) -> Result<Produced, Failure> {
    let status = StatusCode::from_u16(reply.status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .ok_or_else(|| Failure::bad_output(format!("invalid status {}", reply.status)))?;
    if reply.body.len() > max_body {
        return Err(Failure::bad_output(format!(
            "body of {} bytes is over the {max_body}-byte limit",
            reply.body.len()
        )));
    }
    let headers = header_list(reply.headers)?;
    let mut head = ResponseHeader::build(status, Some(headers.len() + 1)).expect("valid status");
    for (k, v) in headers {
        let _ = head.append_header(k, v);
    }
    head.remove_header(&http::header::TRANSFER_ENCODING);
    let _ = head.insert_header(http::header::CONTENT_LENGTH, reply.body.len().to_string());
    Ok(Produced {
        head: Box::new(head),
        body: Body::Bytes(Bytes::from(reply.body)),
        identity: None,
    })
}

/// Walks one phase's chain for one request: skips the plugins that failed
/// earlier in the request, checks out each plugin's instance, and settles
/// failures under the plugin's policy. Every phase runs its chain through
/// it; post, with nothing left to answer, never stops.
struct Walk<'s> {
    set: &'s PluginSet,
    chain: std::slice::Iter<'s, usize>,
    phase: Phase,
    /// The plugin whose turn it is.
    current: usize,
    /// Its place in the chain.
    place: usize,
}

/// A plugin's turn in a chain.
struct Turn<'s, 'c> {
    plugin: &'s Plugin,
    instance: &'c mut Instance,
}

impl Turn<'_, '_> {
    fn deadline(&self) -> Duration {
        self.plugin.settings.limits.deadline
    }

    /// The plugin's limit on a body it produces: its own, else the server's.
    fn body_limit(&self, server_max: usize) -> usize {
        self.plugin
            .settings
            .limits
            .max_body_bytes
            .unwrap_or(server_max)
    }
}

impl<'s> Walk<'s> {
    fn new(set: &'s PluginSet, chain: &'s [usize], phase: Phase) -> Walk<'s> {
        Walk {
            set,
            chain: chain.iter(),
            phase,
            current: 0,
            place: usize::MAX,
        }
    }

    /// The next plugin's turn; `Ok(None)` at the end of the chain, `Err`
    /// the response a fail-closed plugin that could not start leaves.
    async fn next<'c>(&mut self, ctx: &'c mut Ctx) -> Result<Option<Turn<'s, 'c>>, Produced> {
        loop {
            let Some(&i) = self.chain.next() else {
                return Ok(None);
            };
            self.place = self.place.wrapping_add(1);
            if ctx.skips(i) {
                continue;
            }
            self.current = i;
            match check_out(self.set, ctx, i).await {
                Ok(()) => break,
                Err(f) => {
                    if let Some(p) = self.failed(ctx, f) {
                        return Err(p);
                    }
                }
            }
        }
        let i = self.current;
        let instance = ctx.instances[i]
            .as_mut()
            .expect("checked out above")
            .get_mut();
        Ok(Some(Turn {
            plugin: &self.set.plugins[i],
            instance,
        }))
    }

    /// Settles the current plugin's failure: `None` goes on without it,
    /// `Some` is the error response that ends the chain.
    fn failed(&self, ctx: &mut Ctx, f: Failure) -> Option<Produced> {
        match verdict(self.set, self.current, ctx, self.phase, &f) {
            Verdict::Fail(p) if self.phase != Phase::Post => Some(p),
            _ => None,
        }
    }
}

/// A path-and-query a plugin asked for, refused unless it is one.
pub(crate) fn plugin_uri(uri: &str, what: &str) -> Result<http::Uri, Failure> {
    uri.parse::<http::Uri>()
        .ok()
        .filter(|u| u.path().starts_with('/') && u.scheme().is_none())
        .ok_or_else(|| Failure::bad_output(format!("{what} to a malformed URI `{uri}`")))
}

/// Runs a prime chain; `Some` is the response to send instead of routing.
pub async fn run_prime(
    set: &PluginSet,
    chain: &[usize],
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    max_body: usize,
) -> Option<Produced> {
    let seq = ctx.seq;
    let mut walk = Walk::new(set, chain, Phase::Prime);
    loop {
        let turn = match walk.next(ctx).await {
            Ok(Some(turn)) => turn,
            Ok(None) => return None,
            Err(p) => return Some(p),
        };
        let limit = turn.body_limit(max_body);
        let called = turn.instance.prime(seq, req, turn.deadline()).await;
        let outcome = called.and_then(|(outcome, choice)| {
            if choice.is_some() {
                ctx.cache.choice = choice;
            }
            match outcome {
                prime::Outcome::Continue => Ok(None),
                prime::Outcome::Rewrite(uri) => {
                    req.set_uri(plugin_uri(&uri, "rewrite")?);
                    Ok(None)
                }
                prime::Outcome::Respond(reply) => reply_to_produced(reply, limit).map(Some),
            }
        });
        match outcome {
            Ok(None) => {}
            Ok(Some(p)) => return Some(p),
            Err(f) => {
                if let Some(p) = walk.failed(ctx, f) {
                    return Some(p);
                }
            }
        }
    }
}

pub enum PrepareResult {
    /// Every plugin declined: run the route's own action.
    Declined,
    Respond(Produced),
    Forward {
        upstream: String,
        uri: Option<http::Uri>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
}

pub async fn run_prepare(
    set: &PluginSet,
    chain: &[usize],
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    max_body: usize,
    upstream_known: &(dyn Fn(&str) -> bool + Sync),
) -> PrepareResult {
    let seq = ctx.seq;
    let mut walk = Walk::new(set, chain, Phase::Prepare);
    loop {
        let turn = match walk.next(ctx).await {
            Ok(Some(turn)) => turn,
            Ok(None) => return PrepareResult::Declined,
            Err(p) => return PrepareResult::Respond(p),
        };
        let limit = turn.body_limit(max_body);
        let called = turn.instance.prepare(seq, req, turn.deadline()).await;
        let outcome = called.and_then(|o| match o {
            prepare::Outcome::Decline => Ok(None),
            prepare::Outcome::Respond(reply) => {
                ctx.cache.directive = reply.cache.map(|d| match d {
                    types::CacheDirective::NoStore => Directive::NoStore,
                    types::CacheDirective::TtlMs(ms) => Directive::Ttl(Duration::from_millis(ms)),
                });
                reply_to_produced(reply, limit).map(|p| Some(PrepareResult::Respond(p)))
            }
            prepare::Outcome::Forward(fwd) => {
                if !upstream_known(&fwd.upstream) {
                    return Err(Failure::bad_output(format!(
                        "forward to undeclared upstream `{}`",
                        fwd.upstream
                    )));
                }
                let uri = fwd.uri.map(|u| plugin_uri(&u, "forward")).transpose()?;
                Ok(Some(PrepareResult::Forward {
                    upstream: fwd.upstream,
                    uri,
                    headers: header_list(fwd.headers)?,
                }))
            }
        });
        match outcome {
            Ok(None) => {}
            Ok(Some(r)) => return r,
            Err(f) => {
                if let Some(p) = walk.failed(ctx, f) {
                    return PrepareResult::Respond(p);
                }
            }
        }
    }
}

/// Runs the present chain over a whole body. `args` are the arguments of
/// each plugin of the chain, where `!>` directives name it (else empty).
/// `head_writable` is false when the head has already gone to the client
/// (a streamed proxy response). On fail-closed, returns the error response.
#[allow(clippy::too_many_arguments)]
pub async fn run_present(
    set: &PluginSet,
    chain: &[usize],
    args: &[Vec<String>],
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    resp: &mut ResponseHeader,
    mut body: Bytes,
    head_writable: bool,
    max_body: usize,
) -> Result<Bytes, Produced> {
    let seq = ctx.seq;
    let mut walk = Walk::new(set, chain, Phase::Present);
    while let Some(turn) = walk.next(ctx).await? {
        let limit = turn.body_limit(max_body);
        let args = args.get(walk.place).map_or(&[][..], Vec::as_slice);
        let called = turn
            .instance
            .present(seq, req, resp, &body, args, head_writable, turn.deadline())
            .await;
        let outcome = called.and_then(|o| presented(o, limit));
        match outcome {
            Ok(None) => {}
            Ok(Some(b)) => body = b,
            Err(f) => {
                if let Some(p) = walk.failed(ctx, f) {
                    return Err(p);
                }
            }
        }
    }
    Ok(body)
}

/// The body present left: `None` keeps the one it was given; a body over
/// the plugin's limit fails the call.
pub(crate) fn presented(outcome: present::Outcome, limit: usize) -> Result<Option<Bytes>, Failure> {
    match outcome {
        present::Outcome::Keep => Ok(None),
        present::Outcome::Replace(b) if b.len() > limit => Err(Failure::bad_output(format!(
            "body of {} bytes is over the {limit}-byte limit",
            b.len()
        ))),
        present::Outcome::Replace(b) => Ok(Some(Bytes::from(b))),
    }
}

/// Runs the package chain on a response head. On fail-closed, returns the error response.
pub async fn run_package(
    set: &PluginSet,
    chain: &[usize],
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    resp: &mut ResponseHeader,
) -> Result<(), Produced> {
    let seq = ctx.seq;
    let mut walk = Walk::new(set, chain, Phase::Package);
    while let Some(turn) = walk.next(ctx).await? {
        let called = turn.instance.package(seq, req, resp, turn.deadline()).await;
        if let Some(p) = called.err().and_then(|f| walk.failed(ctx, f)) {
            return Err(p);
        }
    }
    Ok(())
}

/// Runs the post chain off the response path, in the post slot it holds
/// until the chain ends, then returns the request's instances to their
/// pools.
pub fn spawn_post(
    set: Arc<PluginSet>,
    mut ctx: Ctx,
    mut req: RequestHeader,
    mut resp: ResponseHeader,
    done: types::Completion,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    tokio::spawn(async move {
        let _slot = slot;
        let seq = ctx.seq;
        let mut walk = Walk::new(&set, &set.chains(ctx.route)[Phase::Post], Phase::Post);
        // Nothing is left to answer: a failure is counted and logged only.
        while let Ok(Some(turn)) = walk.next(&mut ctx).await {
            let called = turn
                .instance
                .post(seq, &mut req, &mut resp, &done, turn.deadline())
                .await;
            if let Err(f) = called {
                let _ = walk.failed(&mut ctx, f);
            }
        }
        release(&set, &mut ctx);
    });
}

/// Gives every instance the request holds back to its plugin's pool.
pub fn release(set: &PluginSet, ctx: &mut Ctx) {
    for (i, slot) in ctx.instances.iter_mut().enumerate() {
        if let Some(inst) = slot.take() {
            set.plugins[i].give_back(inst.into_inner());
        }
    }
}
