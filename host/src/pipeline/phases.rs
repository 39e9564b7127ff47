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
use crate::plugin::{Failure, FailureKind, Instance, Phase, PluginSet};

/// What a failed plugin does to the request.
pub enum Verdict {
    /// fail-open: skip the plugin.
    Skip,
    /// fail-closed: answer with this error response.
    Fail(Produced),
}

/// Applies plugin `i`'s policy to a failure. The plugin is then left out of
/// the rest of this request: its instance is broken, and a second failure
/// would only repeat the first.
fn verdict(set: &PluginSet, i: usize, ctx: &mut Ctx, phase: Phase, f: &Failure) -> Verdict {
    let plugin = &set.plugins[i];
    ctx.mark_failed(i);
    plugin.stats.failed(f.kind);
    crate::metrics::record_failure(&plugin.name, f.kind);
    tracing::warn!(
        plugin = %plugin.name,
        phase = phase.name(),
        kind = f.kind.as_str(),
        request = ctx.request_id(),
        "plugin failed: {}",
        f.detail
    );
    match plugin.settings.failure {
        FailurePolicy::FailOpen => Verdict::Skip,
        FailurePolicy::FailClosed => Verdict::Fail(Produced::text(
            500,
            format!(
                "500 Internal Server Error: plugin `{}` failed (request id {})\n",
                plugin.name,
                ctx.request_id()
            ),
        )),
    }
}

/// The request's instance of plugin `i`, checked out on first use.
async fn instance<'c>(
    set: &PluginSet,
    ctx: &'c mut Ctx,
    i: usize,
) -> Result<&'c mut Instance, Failure> {
    if ctx.instances.len() < set.plugins.len() {
        ctx.instances.resize_with(set.plugins.len(), || None);
    }
    if ctx.instances[i].is_none() {
        let mut inst = set.plugins[i].checkout().await.map_err(|e| Failure {
            kind: FailureKind::Instantiate,
            detail: format!("{e:#}"),
        })?;
        inst.set_request_info(Some(ctx.info()));
        ctx.instances[i] = Some(SyncWrapper::new(inst));
    }
    let plugin = &set.plugins[i];
    plugin
        .stats
        .calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(ctx.instances[i]
        .as_mut()
        .expect("just checked out")
        .get_mut())
}

fn header_list(list: Vec<types::Header>) -> Result<Vec<(HeaderName, HeaderValue)>, Failure> {
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
    })
}

/// What the prime chain decided.
pub enum PrimeResult {
    Continue,
    Respond(Produced),
}

pub async fn run_prime(
    set: &PluginSet,
    chain: &[usize],
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    max_body: usize,
) -> PrimeResult {
    for &i in chain {
        if ctx.has_failed(i) {
            continue;
        }
        let plugin = set.plugins[i].clone();
        let deadline = plugin.settings.limits.deadline;
        let max_body = plugin.settings.limits.max_body_bytes.unwrap_or(max_body);
        let seq = ctx.seq;
        let result = match instance(set, ctx, i).await {
            Ok(inst) => inst.prime(seq, req, deadline).await,
            Err(f) => Err(f),
        };
        let outcome = result.map(|(o, choice)| {
            if choice.is_some() {
                ctx.cache_choice = choice;
            }
            o
        });
        let outcome = outcome.and_then(|o| match o {
            prime::Outcome::Continue => Ok(None),
            prime::Outcome::Rewrite(uri) => {
                let parsed: http::Uri = uri
                    .parse()
                    .ok()
                    .filter(|u: &http::Uri| u.path().starts_with('/') && u.scheme().is_none())
                    .ok_or_else(|| {
                        Failure::bad_output(format!("rewrite to a malformed URI `{uri}`"))
                    })?;
                req.set_uri(parsed);
                Ok(None)
            }
            prime::Outcome::Respond(reply) => reply_to_produced(reply, max_body).map(Some),
        });
        match outcome {
            Ok(None) => {}
            Ok(Some(p)) => return PrimeResult::Respond(p),
            Err(f) => match verdict(set, i, ctx, Phase::Prime, &f) {
                Verdict::Skip => {}
                Verdict::Fail(p) => return PrimeResult::Respond(p),
            },
        }
    }
    PrimeResult::Continue
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
    for &i in chain {
        if ctx.has_failed(i) {
            continue;
        }
        let plugin = set.plugins[i].clone();
        let deadline = plugin.settings.limits.deadline;
        let max_body = plugin.settings.limits.max_body_bytes.unwrap_or(max_body);
        let seq = ctx.seq;
        let result = match instance(set, ctx, i).await {
            Ok(inst) => inst.prepare(seq, req, deadline).await,
            Err(f) => Err(f),
        };
        let outcome = result.and_then(|o| match o {
            prepare::Outcome::Decline => Ok(None),
            prepare::Outcome::Respond(reply) => {
                ctx.cache_directive = reply.cache.map(|d| match d {
                    types::CacheDirective::NoStore => Directive::NoStore,
                    types::CacheDirective::TtlMs(ms) => Directive::Ttl(Duration::from_millis(ms)),
                });
                reply_to_produced(reply, max_body).map(|p| Some(PrepareResult::Respond(p)))
            }
            prepare::Outcome::Forward(fwd) => {
                if !upstream_known(&fwd.upstream) {
                    return Err(Failure::bad_output(format!(
                        "forward to undeclared upstream `{}`",
                        fwd.upstream
                    )));
                }
                let uri = match fwd.uri {
                    None => None,
                    Some(u) => Some(
                        u.parse::<http::Uri>()
                            .ok()
                            .filter(|x| x.path().starts_with('/') && x.scheme().is_none())
                            .ok_or_else(|| {
                                Failure::bad_output(format!("forward to a malformed URI `{u}`"))
                            })?,
                    ),
                };
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
            Err(f) => match verdict(set, i, ctx, Phase::Prepare, &f) {
                Verdict::Skip => {}
                Verdict::Fail(p) => return PrepareResult::Respond(p),
            },
        }
    }
    PrepareResult::Declined
}

/// Runs the present chain over a whole body. `head_writable` is false when
/// the head has already gone to the client (a streamed proxy response).
/// On fail-closed, returns the error response.
#[allow(clippy::too_many_arguments)]
pub async fn run_present(
    set: &PluginSet,
    chain: &[usize],
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    resp: &mut ResponseHeader,
    mut body: Bytes,
    head_writable: bool,
    max_body: usize,
) -> Result<Bytes, Produced> {
    for &i in chain {
        if ctx.has_failed(i) {
            continue;
        }
        let plugin = set.plugins[i].clone();
        let deadline = plugin.settings.limits.deadline;
        let max_body = plugin.settings.limits.max_body_bytes.unwrap_or(max_body);
        let seq = ctx.seq;
        let result = match instance(set, ctx, i).await {
            Ok(inst) => {
                inst.present(seq, req, resp, &body, head_writable, deadline)
                    .await
            }
            Err(f) => Err(f),
        };
        let outcome = result.and_then(|o| match o {
            present::Outcome::Keep => Ok(None),
            present::Outcome::Replace(b) if b.len() > max_body => {
                Err(Failure::bad_output(format!(
                    "body of {} bytes is over the {max_body}-byte limit",
                    b.len()
                )))
            }
            present::Outcome::Replace(b) => Ok(Some(Bytes::from(b))),
        });
        match outcome {
            Ok(None) => {}
            Ok(Some(b)) => body = b,
            Err(f) => match verdict(set, i, ctx, Phase::Present, &f) {
                Verdict::Skip => {}
                Verdict::Fail(p) => return Err(p),
            },
        }
    }
    Ok(body)
}

/// Runs the package chain on a response head. On fail-closed, returns the error response.
pub async fn run_package(
    set: &PluginSet,
    chain: &[usize],
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    resp: &mut ResponseHeader,
) -> Result<(), Produced> {
    for &i in chain {
        if ctx.has_failed(i) {
            continue;
        }
        let plugin = set.plugins[i].clone();
        let deadline = plugin.settings.limits.deadline;
        let seq = ctx.seq;
        let result = match instance(set, ctx, i).await {
            Ok(inst) => inst.package(seq, req, resp, deadline).await,
            Err(f) => Err(f),
        };
        if let Err(f) = result {
            if let Verdict::Fail(p) = verdict(set, i, ctx, Phase::Package, &f) {
                return Err(p);
            }
        }
    }
    Ok(())
}

/// Runs the post chain off the response path, then returns the request's
/// instances to their pools.
pub fn spawn_post(
    set: Arc<PluginSet>,
    mut ctx: Ctx,
    mut req: RequestHeader,
    mut resp: ResponseHeader,
    done: types::Completion,
) {
    tokio::spawn(async move {
        for &i in &set.chains(ctx.route)[Phase::Post] {
            if ctx.has_failed(i) {
                continue;
            }
            let plugin = set.plugins[i].clone();
            let deadline = plugin.settings.limits.deadline;
            let seq = ctx.seq;
            let result = match instance(&set, &mut ctx, i).await {
                Ok(inst) => inst.post(seq, &mut req, &mut resp, &done, deadline).await,
                Err(f) => Err(f),
            };
            if let Err(f) = result {
                let _ = verdict(&set, i, &mut ctx, Phase::Post, &f);
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
