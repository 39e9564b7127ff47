//! Requests the host makes to an upstream on its own account (a plugin's
//! `http` calls, the realtime hub's calls to its backend): one pooled
//! client, and the rules a proxied request follows — the upstream's limit
//! on requests at once, its rotation, passive health — within a time
//! budget and a body limit.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client as Hyper};
use hyper_util::rt::TokioExecutor;

use super::Upstream;

/// The pooled client the host's own requests share.
pub type Client = Hyper<HttpConnector, Full<Bytes>>;

pub fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Hyper::builder(TokioExecutor::new()).build(connector)
}

/// One request to an upstream.
pub struct Exchange<'a> {
    pub method: Method,
    /// Starts with `/`.
    pub path_and_query: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// How long the whole exchange may take, admission included.
    pub budget: Duration,
    /// Largest response body taken.
    pub max_body: usize,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The request itself cannot be sent.
    #[error("{0}")]
    Invalid(String),
    /// The upstream cannot be reached or did not answer in time.
    #[error("{0}")]
    Unavailable(String),
}

impl Exchange<'_> {
    pub async fn send(self, client: &Client, upstream: &Upstream) -> Result<Answer, ExchangeError> {
        use ExchangeError::{Invalid, Unavailable};
        let name = &upstream.name;
        if !self.path_and_query.starts_with('/') {
            return Err(Invalid(format!(
                "`{}` is not a path and query",
                self.path_and_query
            )));
        }
        let started = tokio::time::Instant::now();
        // The upstream's limit on requests at once holds here too.
        let _slot = match &upstream.gate {
            None => None,
            Some(gate) => {
                match tokio::time::timeout(self.budget, gate.enter(&upstream.counters)).await {
                    Ok(Ok(slot)) => Some(slot),
                    Ok(Err(why)) => {
                        return Err(Unavailable(format!(
                            "upstream `{name}` is at max_inflight: {why:?}"
                        )))
                    }
                    Err(_) => {
                        return Err(Unavailable(format!(
                            "upstream `{name}` is at max_inflight for longer than the call may wait"
                        )))
                    }
                }
            }
        };
        let budget = self.budget.saturating_sub(started.elapsed());
        let (addr, target) = upstream.pick().ok_or_else(|| {
            Unavailable(format!(
                "every target of upstream `{name}` is out of rotation"
            ))
        })?;
        let _busy = target.busy();
        let uri: http::Uri = format!("http://{addr}{}", self.path_and_query)
            .parse()
            .map_err(|_| {
                Invalid(format!(
                    "`{}` is not a valid path and query",
                    self.path_and_query
                ))
            })?;
        let mut builder = http::Request::builder().method(self.method).uri(uri);
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = builder
            .body(Full::new(self.body))
            .map_err(|e| Invalid(format!("bad request: {e}")))?;

        let max_body = self.max_body;
        let fetch = async {
            // The outcome counts for the target's health as a proxied
            // request's does: a failed exchange, or a 5xx where counted.
            let resp = client.request(request).await.map_err(|e| {
                target.failed(&upstream.eject);
                Unavailable(format!("upstream `{name}`: {e}"))
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
                .map_err(|e| Unavailable(format!("reading the response: {e}")))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let outcome = tokio::time::timeout(budget, fetch).await;
        if outcome.is_err() && budget >= upstream.timeouts.read {
            // Only a wait as long as the upstream's read timeout is the
            // target's fault; a shorter one is the caller's deadline.
            target.failed(&upstream.eject);
        }
        outcome.map_err(|_| {
            Unavailable(format!(
                "upstream `{name}` did not answer within {} ms",
                budget.as_millis()
            ))
        })?
    }
}
