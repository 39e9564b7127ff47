//! Compression, the last step of a response: after present and package,
//! and after the cache took the identity body. Static files and stored
//! responses are compressed once per coding and kept; other bodies are
//! compressed as they go.

use bytes::Bytes;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::io::AsyncReadExt;

use super::context::Ctx;
use crate::actions::Body;
use crate::compression::{self, Compressing, Encoder, Encoding, Settings, Store};

/// The coding this response goes in, if any, with `head` made to say so.
pub fn choose(ctx: &Ctx, req: &RequestHeader, head: &mut ResponseHeader) -> Option<Encoding> {
    if !ctx.compress {
        return None;
    }
    let settings = ctx.active.config.compression.as_deref()?;
    compression::plan(settings, req, head)
}

/// A proxied body's compressor, for the coding `choose` picked.
pub fn streaming(ctx: &Ctx, coding: Encoding) -> Result<Box<Compressing>> {
    let level = ctx
        .active
        .config
        .compression
        .as_deref()
        .map_or(1, |s| s.level(coding));
    let encoder = Encoder::new(coding, level)
        .map_err(|e| Error::because(ErrorType::InternalError, "starting a compressor", e))?;
    Ok(Box::new(Compressing { coding, encoder }))
}

pub fn failed(store: &Store, e: std::io::Error) -> Box<Error> {
    store
        .stats
        .errors
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(
        event = "compression_failed",
        "compressing a response failed: {e}"
    );
    Error::because(ErrorType::InternalError, "compressing the response", e)
}

/// Passes a piece of a streamed body through the response's compressor,
/// if it has one. An error ends the response: the client sees a broken
/// stream, never a short body that looks whole.
pub fn piece(ctx: &mut Ctx, store: &Store, body: &mut Option<Bytes>, end: bool) -> Result<()> {
    let Some(c) = ctx.compressing.as_mut() else {
        return Ok(());
    };
    let input = body.take().unwrap_or_default();
    let out = c
        .encoder
        .encode(&input, end)
        .map_err(|e| failed(store, e))?;
    if end {
        store.counted(c.coding);
        ctx.compressing = None;
    }
    *body = (!out.is_empty() || end).then_some(out);
    Ok(())
}

/// Bodies larger than this are compressed on a blocking thread, so that a
/// slow level never holds a worker and the requests queued on it.
const INLINE_MAX: usize = 64 * 1024;

/// A whole body in `coding`: the form kept under `identity` (made and kept
/// the first time), or, without one, compressed now.
pub async fn whole(
    store: &Store,
    s: &Settings,
    coding: Encoding,
    identity: Option<&str>,
    body: Bytes,
) -> Result<Bytes> {
    if let Some(kept) = identity.and_then(|id| store.get(id, coding)) {
        store.counted(coding);
        return Ok(kept);
    }
    compress_and_keep(store, s, coding, identity, body).await
}

/// Compresses a whole body (on a blocking thread when large) and keeps it
/// under `identity`, if it has one and is small enough.
async fn compress_and_keep(
    store: &Store,
    s: &Settings,
    coding: Encoding,
    identity: Option<&str>,
    body: Bytes,
) -> Result<Bytes> {
    let level = s.level(coding);
    let len = body.len();
    let out = if len <= INLINE_MAX {
        compression::compress(coding, level, &body)
    } else {
        tokio::task::spawn_blocking(move || compression::compress(coding, level, &body))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
    .map_err(|e| failed(store, e))?;
    store
        .stats
        .compressed_whole
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(id) = identity.filter(|_| len as u64 <= s.once_max_bytes) {
        store.keep(id, coding, out.clone());
    }
    store.counted(coding);
    Ok(out)
}

/// A produced body in `coding`. A whole static file small enough to keep
/// is read only when its compressed form is not kept yet; a larger file is
/// returned with the compressor to stream it through.
pub async fn produced(
    store: &Store,
    s: &Settings,
    coding: Encoding,
    body: Body,
    identity: Option<&str>,
) -> Result<(Body, Option<Encoder>)> {
    match body {
        Body::Empty => {
            let out = whole(store, s, coding, None, Bytes::new()).await?;
            Ok((Body::Bytes(out), None))
        }
        Body::Bytes(b) => {
            let out = whole(store, s, coding, identity, b).await?;
            Ok((Body::Bytes(out), None))
        }
        Body::File { mut file, len } => {
            let keep = identity.filter(|_| len <= s.once_max_bytes);
            let Some(id) = keep else {
                let encoder =
                    Encoder::new(coding, s.level(coding)).map_err(|e| failed(store, e))?;
                store.counted(coding);
                return Ok((Body::File { file, len }, Some(encoder)));
            };
            if let Some(kept) = store.get(id, coding) {
                store.counted(coding);
                return Ok((Body::Bytes(kept), None));
            }
            let mut all = Vec::with_capacity(len as usize);
            (&mut file)
                .take(len)
                .read_to_end(&mut all)
                .await
                .map_err(|e| Error::because(ErrorType::ReadError, "reading a static file", e))?;
            if all.len() as u64 != len {
                return Error::e_explain(ErrorType::ReadError, "static file shrank");
            }
            let out = compress_and_keep(store, s, coding, Some(id), Bytes::from(all)).await?;
            Ok((Body::Bytes(out), None))
        }
    }
}
