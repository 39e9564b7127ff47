//! `kavro:plugin/http`: requests to the upstreams declared in the host's
//! config, round robin over their targets, through one pooled client.
//! Bounded by the upstream's timeouts, by what is left of the plugin's
//! deadline, and by the plugin's body limit.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use wasmtime::component::Linker;

use super::{denied, view_of, CapCtx, Granting, HasView, HostView, Unit};
use crate::config::Config;
use crate::plugin::bindings::kavro::plugin::http::{
    self as wit, Host, IncomingResponse, OutgoingRequest,
};
use crate::plugin::bindings::types::HostError;
use crate::upstream::client::{client, Client, Exchange, ExchangeError};
use crate::upstream::Upstream;

pub struct Http;

impl Unit for Http {
    const NAME: &'static str = "http";
    /// One connection pool for every plugin's outbound requests.
    type Shared = Client;
    /// What the plugin may reach, if granted.
    type View = Option<Arc<HttpGrant>>;

    fn shared(_: &Config) -> Client {
        client()
    }

    fn view(plugin: &Granting<'_>, client: &Client) -> Self::View {
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

/// What a plugin granted "http" may reach.
pub struct HttpGrant {
    pub client: Client,
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
        let method = http::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| invalid(format!("`{}` is not an HTTP method", req.method)))?;
        let answer = Exchange {
            method,
            path_and_query: &req.uri,
            headers: req.headers,
            body: Bytes::from(req.body),
            budget: self.call.io_budget().min(upstream.timeouts.read),
            max_body: grant.max_body,
        }
        .send(&grant.client, upstream)
        .await
        .map_err(|e| match e {
            ExchangeError::Invalid(why) => HostError::Invalid(why),
            ExchangeError::Unavailable(why) => HostError::Unavailable(why),
        })?;
        let headers = answer
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
            status: answer.status.as_u16(),
            headers,
            body: answer.body.to_vec(),
        })
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
