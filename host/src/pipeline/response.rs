//! The last steps of every response, the same whether Kavro produced it or
//! proxied it: present over a whole body, the headers Kavro adds, and
//! package; and the error response that a fail-closed plugin leaves.

use bytes::Bytes;
use http::{header, HeaderName};
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::io::AsyncReadExt;

use super::caching::X_KAVRO_CACHE;
use super::context::Ctx;
use super::phases;
use crate::actions::directives::FileDirectives;
use crate::actions::{Body, Produced};
use crate::plugin::Phase;

/// Parsed once for lookups; an insert takes the `&'static str`, which
/// Pingora keeps as the header's case without copying it.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Runs the route's present chain over `body`; `head_writable` is false
/// once the head has gone to the client. On fail-closed, the error response.
pub async fn present(
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    head: &mut ResponseHeader,
    body: Bytes,
    head_writable: bool,
) -> std::result::Result<Bytes, Produced> {
    if !ctx.any_turn(&ctx.active.plugins.chains(ctx.route)[Phase::Present]) {
        return Ok(body);
    }
    // The chain is read from the request's own snapshot, which the chain
    // driver borrows the context beside.
    let active = ctx.active.clone();
    let chain = &active.plugins.chains(ctx.route)[Phase::Present];
    let max = active.config.present_max_bytes;
    phases::run_present(
        &active.plugins,
        chain,
        &[],
        ctx,
        req,
        head,
        body,
        head_writable,
        max,
    )
    .await
}

/// Runs the plugins a static file's `!>` line names, left to right, each
/// with its arguments, on the file's body; what they leave goes on to the
/// route's own present chain. A line that cannot run (malformed, or a
/// directive no plugin here answers) is a 500, logged with the file.
pub async fn directed(
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    mut p: Produced,
    file: &FileDirectives,
) -> Produced {
    let list = match &file.list {
        Ok(list) => list,
        Err(why) => return cannot_run(ctx, file, format!("malformed directive line: {why}")),
    };
    let active = ctx.active.clone();
    let mut chain = Vec::with_capacity(list.len());
    for d in list {
        match active.plugins.directive(&d.name, ctx.route) {
            Some(i) if !ctx.skips(i) => chain.push(i),
            _ => {
                let why = format!(
                    "no loaded plugin answers the directive `{}` (on this route and path)",
                    d.name
                );
                return cannot_run(ctx, file, why);
            }
        }
    }
    if p.head.status != http::StatusCode::OK {
        return p;
    }
    let args: Vec<Vec<String>> = list.iter().map(|d| d.args.clone()).collect();
    let Body::Bytes(body) = std::mem::replace(&mut p.body, Body::Empty) else {
        return p;
    };
    // What directives make may differ for each response (a nonce): it is
    // never stored for others.
    ctx.cache.directive = Some(crate::cache::Directive::NoStore);
    let max = active.config.present_max_bytes;
    let plugins = &active.plugins;
    let out = phases::run_present(
        plugins,
        &chain,
        &args,
        ctx,
        req,
        &mut p.head,
        body,
        true,
        max,
    );
    let out = match out.await {
        Ok(out) => out,
        Err(err) => return err,
    };
    // A directive whose plugin failed open did not run: the file is not
    // served as if it had (`hide` must not let it through).
    if let Some((d, _)) = list.iter().zip(&chain).find(|(_, &i)| ctx.skips(i)) {
        let why = format!("the directive `{}` did not run: its plugin failed", d.name);
        return cannot_run(ctx, file, why);
    }
    let _ = p
        .head
        .insert_header(header::CONTENT_LENGTH, out.len().to_string());
    p.body = Body::Bytes(out);
    p
}

/// The 500 of a file whose directives cannot run, logged with the file.
fn cannot_run(ctx: &Ctx, file: &FileDirectives, why: String) -> Produced {
    tracing::warn!(
        event = "directive_failed",
        file = %file.file.display(),
        request = ctx.request_id(),
        "{why}"
    );
    Produced::text(
        500,
        format!(
            "500 Internal Server Error: this file's directives cannot run (request id {})\n",
            ctx.request_id()
        ),
    )
}

/// Present over a response Kavro produced, if its body is whole and fits:
/// bytes, or a whole static file (not a range of one), read for it.
pub async fn present_produced(
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    p: &mut Produced,
) -> Result<()> {
    if !ctx.any_turn(&ctx.active.plugins.chains(ctx.route)[Phase::Present]) {
        return Ok(());
    }
    let max = ctx.active.config.present_max_bytes;
    if let Body::File { file, len } = &mut p.body {
        if *len <= max as u64 && p.head.status == http::StatusCode::OK {
            let mut whole = Vec::with_capacity(*len as usize);
            file.take(*len)
                .read_to_end(&mut whole)
                .await
                .map_err(|e| Error::because(ErrorType::ReadError, "reading a static file", e))?;
            p.body = Body::Bytes(Bytes::from(whole));
        }
    }
    let Body::Bytes(body) = &p.body else {
        return Ok(());
    };
    if body.len() > max || p.head.status.as_u16() < 200 {
        return Ok(());
    }
    match present(ctx, req, &mut p.head, body.clone(), true).await {
        Ok(out) => {
            let _ = p
                .head
                .insert_header(header::CONTENT_LENGTH, out.len().to_string());
            p.body = Body::Bytes(out);
            // Present's output is this response's own.
            p.identity = None;
        }
        Err(err) => *p = err,
    }
    Ok(())
}

/// The headers Kavro adds to every response: what the cache did, the
/// request id, and HSTS over HTTPS when configured.
pub fn stamp(ctx: &Ctx, head: &mut ResponseHeader) {
    if let Some(status) = ctx.cache.status {
        let status = http::HeaderValue::from_static(status.as_str());
        head.insert_parsed_header(&X_KAVRO_CACHE, "x-kavro-cache", status);
    }
    head.insert_parsed_header(&X_REQUEST_ID, "x-request-id", ctx.id.clone());
    if let Some(cc) = &ctx.client_cache {
        if takes_client_cache(ctx, head) {
            let _ = head.insert_header(http::header::CACHE_CONTROL, cc.clone());
        }
    }
    if ctx.https {
        if let Some(hsts) = ctx.active.config.tls.as_ref().and_then(|t| t.hsts.as_ref()) {
            let _ = head.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
}

/// Whether the route's client preference goes on `head`: a response that
/// says nothing of its own lifetime (no Cache-Control, no Expires), with a
/// status caches keep by default (RFC 9110 §15.1; not temporary redirects
/// or errors) or Kavro's own 304, that sets no cookie and is not one made
/// for this response alone (file directives, a reply marked no-store).
fn takes_client_cache(ctx: &Ctx, head: &ResponseHeader) -> bool {
    let status = head.status.as_u16();
    let keepable = matches!(status, 200 | 203 | 204 | 206 | 300 | 301 | 308)
        || (status == 304 && ctx.upstream.is_none());
    let h = &head.headers;
    let says = h.contains_key(http::header::CACHE_CONTROL)
        || h.contains_key(http::header::EXPIRES)
        || h.contains_key(http::header::SET_COOKIE);
    let own = ctx.cache.directive == Some(crate::cache::Directive::NoStore);
    keepable && !says && !own
}

/// Runs the route's package chain on the head. On fail-closed, the error
/// response to send instead, stamped with the request id.
pub async fn package(
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    head: &mut ResponseHeader,
) -> std::result::Result<(), Produced> {
    if ctx.active.plugins.chains(ctx.route)[Phase::Package].is_empty() {
        return Ok(());
    }
    let active = ctx.active.clone();
    let chain = &active.plugins.chains(ctx.route)[Phase::Package];
    phases::run_package(&active.plugins, chain, ctx, req, head)
        .await
        .map_err(|mut err| {
            let _ = err
                .head
                .insert_header(X_REQUEST_ID.as_str(), ctx.id.clone());
            err
        })
}

/// A produced response's head: stamped, then packaged.
pub async fn finish_head(
    ctx: &mut Ctx,
    req: &mut RequestHeader,
    head: &mut ResponseHeader,
) -> std::result::Result<(), Produced> {
    stamp(ctx, head);
    package(ctx, req, head).await
}
