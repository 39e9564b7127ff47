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

use super::denied;
use crate::actions::proxy::Upstream;
use crate::plugin::bindings::kavro::plugin::http::{Host, IncomingResponse, OutgoingRequest};
use crate::plugin::bindings::types::HostError;
use crate::plugin::engine::now_tick;
use crate::plugin::state::HostState;

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
}

fn invalid(what: impl Into<String>) -> HostError {
    HostError::Invalid(what.into())
}

impl HostState {
    async fn send_checked(&mut self, req: OutgoingRequest) -> Result<IncomingResponse, HostError> {
        let grant = self
            .grants
            .http
            .clone()
            .ok_or_else(|| denied(&self.grants.plugin, "http"))?;
        let upstream = grant.upstreams.get(&req.upstream).ok_or_else(|| {
            invalid(format!(
                "upstream `{}` is not declared in the host's config",
                req.upstream
            ))
        })?;
        let addr = upstream.next_addr().ok_or_else(|| {
            HostError::Unavailable(format!("upstream `{}` has no target", req.upstream))
        })?;
        if !req.uri.starts_with('/') {
            return Err(invalid(format!("`{}` is not a path and query", req.uri)));
        }
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

        let left =
            crate::plugin::engine::TICK * self.deadline_tick.saturating_sub(now_tick()) as u32;
        // Four fifths of what is left: the plugin keeps time to handle the error.
        let budget = (left - left / 5).min(upstream.read_timeout);
        let max_body = self.grants.max_body;
        let fetch = async {
            let resp =
                grant.client.request(request).await.map_err(|e| {
                    HostError::Unavailable(format!("upstream `{}`: {e}", req.upstream))
                })?;
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
        tokio::time::timeout(budget, fetch).await.map_err(|_| {
            HostError::Unavailable(format!(
                "upstream `{}` did not answer within {} ms",
                req.upstream,
                budget.as_millis()
            ))
        })?
    }
}

impl Host for HostState {
    async fn send(&mut self, req: OutgoingRequest) -> Result<IncomingResponse, HostError> {
        self.send_checked(req).await
    }
}
