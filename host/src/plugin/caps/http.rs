//! `kavro:plugin/http`: requests to the upstreams declared in the host's
//! config, round robin over their targets, through one pooled client.
//! Bounded by the upstream's timeouts, by what is left of the plugin's
//! deadline, and by the plugin's body limit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use wasmtime::component::Linker;

use super::{denied, view_of, CapCtx, Granting, HasView, HostView, Unit};
use crate::config::Config;
use crate::plugin::bindings::kavro::plugin::http::{
    self as wit, Host, IncomingResponse, OutgoingRequest,
};
use crate::plugin::bindings::types::HostError;
use crate::upstream::Upstream;

pub struct Http;

impl Unit for Http {
    const NAME: &'static str = "http";
    /// One connection pool for every plugin's outbound requests.
    type Shared = HttpClient;
    /// What the plugin may reach, if granted.
    type View = Option<Arc<HttpGrant>>;

    fn shared(_: &Config) -> HttpClient {
        client()
    }

    fn view(plugin: &Granting<'_>, client: &HttpClient) -> Self::View {
        Some(Arc::new(HttpGrant {
            client: client.clone(),
            upstreams: plugin.upstreams.clone(),
            // The registry fills it in from the server's present_max_bytes.
            max_body: plugin.settings.limits.max_body_bytes.unwrap_or(1 << 20),
        }))
    }

    fn add_to_linker<T: HostView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasView<Http>>(linker, view_of::<T, Http>)
    }
}

/// The client every plugin's requests share.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// What a plugin granted "http" may reach.
pub struct HttpGrant {
    pub client: HttpClient,
    pub upstreams: HashMap<String, Arc<Upstream>>,
    /// Largest response body the plugin may fetch.
    pub max_body: usize,
}

fn invalid(what: impl Into<String>) -> HostError {
    HostError::Invalid(what.into())
}

impl CapCtx<'_, Option<Arc<HttpGrant>>> {
    async fn send_checked(&mut self, req: OutgoingRequest) -> Result<IncomingResponse, HostError> {
        let grant = self.view.clone().ok_or_else(|| denied::<Http>(self.call))?;
        let upstream = grant.upstreams.get(&req.upstream).ok_or_else(|| {
            invalid(format!(
                "upstream `{}` is not declared in the host's config",
                req.upstream
            ))
        })?;
        if !req.uri.starts_with('/') {
            return Err(invalid(format!("`{}` is not a path and query", req.uri)));
        }
        let left = self.call.time_left();
        // Four fifths of what is left: the plugin keeps time to handle the error.
        let budget = (left - left / 5).min(upstream.timeouts.read);
        let started = tokio::time::Instant::now();
        // The upstream's limit on requests at once holds for plugins too.
        let _slot = match &upstream.gate {
            None => None,
            Some(gate) => {
                match tokio::time::timeout(budget, gate.enter(&upstream.counters)).await {
                    Ok(Ok(slot)) => Some(slot),
                    Ok(Err(why)) => {
                        return Err(HostError::Unavailable(format!(
                            "upstream `{}` is at max_inflight: {why:?}",
                            req.upstream
                        )))
                    }
                    Err(_) => {
                        return Err(HostError::Unavailable(format!(
                            "upstream `{}` is at max_inflight for longer than the call may wait",
                            req.upstream
                        )))
                    }
                }
            }
        };
        let budget = budget.saturating_sub(started.elapsed());
        let (addr, target) = upstream.pick().ok_or_else(|| {
            HostError::Unavailable(format!(
                "every target of upstream `{}` is out of rotation",
                req.upstream
            ))
        })?;
        let _busy = target.busy();
        let uri: http::Uri = format!("http://{addr}{}", req.uri)
            .parse()
            .map_err(|_| invalid(format!("`{}` is not a valid path and query", req.uri)))?;
        let method = http::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| invalid(format!("`{}` is not an HTTP method", req.method)))?;
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = builder
            .body(Full::new(Bytes::from(req.body)))
            .map_err(|e| invalid(format!("bad request: {e}")))?;

        let max_body = grant.max_body;
        let fetch = async {
            // The outcome counts for the target's health as a proxied
            // request's does: a failed exchange, or a 5xx where counted.
            let resp = grant.client.request(request).await.map_err(|e| {
                target.failed(&upstream.eject);
                HostError::Unavailable(format!("upstream `{}`: {e}", req.upstream))
            })?;
            if upstream.eject.on_5xx && resp.status().is_server_error() {
                target.failed(&upstream.eject);
            } else {
                target.succeeded();
            }
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, max_body)
                .collect()
                .await
                .map_err(|e| HostError::Unavailable(format!("reading the response: {e}")))?
                .to_bytes();
            let headers = parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            Ok(IncomingResponse {
                status: parts.status.as_u16(),
                headers,
                body: body.to_vec(),
            })
        };
        let outcome = tokio::time::timeout(budget, fetch).await;
        if outcome.is_err() && budget >= upstream.timeouts.read {
            // Only a wait as long as the upstream's read timeout is the
            // target's fault; a shorter one is the plugin's deadline.
            target.failed(&upstream.eject);
        }
        outcome.map_err(|_| {
            HostError::Unavailable(format!(
                "upstream `{}` did not answer within {} ms",
                req.upstream,
                budget.as_millis()
            ))
        })?
    }
}

impl Host for CapCtx<'_, Option<Arc<HttpGrant>>> {
    async fn send(&mut self, req: OutgoingRequest) -> Result<IncomingResponse, HostError> {
        self.send_checked(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{call, granting, is_denied, view};
    use super::super::Capability;
    use super::*;

    fn get(upstream: &str, uri: &str) -> OutgoingRequest {
        OutgoingRequest {
            upstream: upstream.into(),
            method: "GET".into(),
            uri: uri.into(),
            headers: vec![],
            body: vec![],
        }
    }

    #[tokio::test]
    async fn denied_unless_granted_and_only_declared_upstreams() {
        let mut call = call();
        let mut no = view::<Http>(&granting(&[]));
        let mut ctx = CapCtx {
            view: &mut no,
            call: &mut call,
        };
        assert!(is_denied(ctx.send(get("api", "/")).await));
        let mut yes = view::<Http>(&granting(&[Capability::Http]));
        let mut ctx = CapCtx {
            view: &mut yes,
            call: &mut call,
        };
        let Err(HostError::Invalid(e)) = ctx.send(get("api", "/")).await else {
            panic!("an undeclared upstream is refused");
        };
        assert!(e.contains("not declared"), "{e}");
    }
}
