//! The admin listener, apart from traffic: `/status`, `/plugins`,
//! `/diagnostics`, `/metrics` (Prometheus), `POST /reload` and
//! `POST /cache/purge`. The host-wide counters it reports are `metrics`'.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use prometheus::{Encoder, TextEncoder};

use crate::cache::ResponseCache;
use crate::metrics;
use crate::plugin::stats::quantile;
use crate::plugin::FailureKind;
use crate::reload::history::Attempt;
use crate::reload::Reloader;
use crate::Active;

pub struct Admin {
    pub active: Arc<ArcSwap<Active>>,
    pub reloader: Arc<Reloader>,
    pub cache: Arc<ResponseCache>,
    pub acme: Arc<crate::tls::acme::Acme>,
    pub hub: Arc<crate::realtime::Hub>,
    pub compressed: Arc<crate::compression::Store>,
}

fn outcome_json(o: Option<Attempt>) -> serde_json::Value {
    o.map_or(serde_json::Value::Null, |a| a.json())
}

fn json(status: u16, v: serde_json::Value) -> Response<Vec<u8>> {
    let body = serde_json::to_vec_pretty(&v).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(body)
        .expect("valid response")
}

impl Admin {
    fn status(&self) -> serde_json::Value {
        let active = self.active.load();
        let fleet = self.cache.fleet.as_ref();
        serde_json::json!({
            // Degraded: serving, but with state this host cannot share.
            "status": if fleet.is_some_and(|f| !f.is_up()) { "degraded" } else { "ok" },
            "cluster": fleet.map(|f| f.report()),
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": metrics::uptime().as_secs(),
            "requests": metrics::requests(),
            "config": active.config.source,
            "routes": active.config.routes.len(),
            "plugins": active.plugins.plugins.len(),
            "set_version": active.version,
            "last_reload": outcome_json(self.reloader.last()),
            "last_refusal": outcome_json(self.reloader.last_refusal()),
        })
    }

    fn plugins(&self) -> serde_json::Value {
        let active = self.active.load();
        let list: Vec<_> = active
            .plugins
            .plugins
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "file": p.file.display().to_string(),
                    "version": p.manifest.version,
                    "hash": p.hash,
                    "phases": p.phases.names(),
                    "loaded_at": p.loaded_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    "state": "active",
                    "code": if p.baseline { "baseline" } else { "optimized" },
                    "calls": p.stats.calls.load(Ordering::Relaxed),
                    "failures": p.stats.failures_total(),
                    "last_error": p.stats.last_error(),
                    "backoff": p.backoff.snapshot(),
                    "instances_live": p.stats.instances_live.load(Ordering::Relaxed),
                    "instances_created": p.stats.instances_created.load(Ordering::Relaxed),
                    "instances_pooled": p.pooled(),
                })
            })
            .collect();
        serde_json::json!({
            "plugins": list,
            "last_refusal": outcome_json(self.reloader.last_refusal()),
        })
    }
}

/// A quantile of a histogram, in microseconds.
fn micros(h: &prometheus::Histogram, q: f64) -> Option<f64> {
    quantile(h, q).map(|s| (s * 1e7).round() / 10.0)
}

impl Admin {
    /// Host-wide and per-plugin figures for an operator: traffic, status
    /// classes, latency, and what each plugin costs and how it fails.
    fn diagnostics(&self) -> serde_json::Value {
        let active = self.active.load();
        let classes: serde_json::Map<String, serde_json::Value> = metrics::responses_by_class()
            .map(|(c, n)| (c.to_string(), n.into()))
            .collect();
        let plugins: Vec<_> = active
            .plugins
            .plugins
            .iter()
            .map(|p| {
                let s = &p.stats;
                let errors: serde_json::Map<String, serde_json::Value> = FailureKind::ALL
                    .iter()
                    .map(|k| (k.as_str().to_string(), s.failures(*k).into()))
                    .collect();
                serde_json::json!({
                    "name": p.name,
                    "version": p.manifest.version,
                    "hash": p.hash,
                    "calls": s.calls.load(Ordering::Relaxed),
                    "running": s.running.load(Ordering::Relaxed),
                    "slow_calls": s.slow_calls.load(Ordering::Relaxed),
                    "errors": errors,
                    "call_us": { "p50": micros(&s.call_seconds, 0.5), "p99": micros(&s.call_seconds, 0.99) },
                    "instances": {
                        "live": s.instances_live.load(Ordering::Relaxed),
                        "pooled": p.pooled(),
                        "created": s.instances_created.load(Ordering::Relaxed),
                        "replaced_grown": s.instances_grown.load(Ordering::Relaxed),
                    },
                })
            })
            .collect();
        let mut post = active.services.post_slots.report();
        crate::pipeline::post_queue::report(&mut post);
        serde_json::json!({
            "uptime_seconds": metrics::uptime().as_secs(),
            "requests": metrics::requests(),
            "in_flight": crate::shutdown::in_flight(),
            "responses": classes,
            "latency_us": { "p50": micros(metrics::latency(), 0.5), "p99": micros(metrics::latency(), 0.99) },
            "cache": self.cache_figures(),
            "compression": self.compressed.figures(),
            "upstreams": active
                .services
                .upstreams
                .iter()
                .map(|(name, u)| (name.clone(), u.report()))
                .collect::<serde_json::Map<_, _>>(),
            "plugins": plugins,
            "post": post,
            "connections_refused": crate::protect::connections::refused(),
            "tls": crate::tls::diagnostics(&active, &self.acme),
            "realtime": self.realtime(&active),
            "cluster": self.cache.fleet.as_ref().map(|f| f.report()),
        })
    }

    /// The hub's figures, and whether publishing is on (`null` without
    /// realtime routes or a `[realtime]` table).
    fn realtime(&self, active: &Active) -> serde_json::Value {
        let mut report = self.hub.report();
        report["publish"] = match &active.config.publish {
            None => serde_json::Value::Null,
            Some(p) => serde_json::json!({
                "path": p.path,
                "on": p.secret.is_some(),
            }),
        };
        report
    }

    fn cache_counters(&self) -> [(&'static str, u64); 10] {
        let s = &self.cache.stats;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("hits", n(&s.hits)),
            ("misses", n(&s.misses)),
            ("bypasses", n(&s.bypasses)),
            ("stores", n(&s.stores)),
            ("coalesced", n(&s.coalesced)),
            ("revalidated_304", n(&s.revalidated_304)),
            ("revalidated_200", n(&s.revalidated_200)),
            ("stale_while_revalidate", n(&s.stale_while_revalidate)),
            ("stale_if_error", n(&s.stale_if_error)),
            ("invalidations", n(&s.invalidations)),
        ]
    }

    fn cache_figures(&self) -> serde_json::Value {
        let mut m: serde_json::Map<String, serde_json::Value> = self
            .cache_counters()
            .iter()
            .map(|(k, v)| (k.to_string(), (*v).into()))
            .collect();
        let (hits, misses) = (
            m["hits"].as_u64().unwrap_or(0),
            m["misses"].as_u64().unwrap_or(0),
        );
        let ratio = (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64);
        let (entries, bytes) = self.cache.size();
        m.insert("hit_ratio".into(), ratio.into());
        m.insert("entries".into(), entries.into());
        m.insert("bytes".into(), bytes.into());
        m.into()
    }

    /// `POST /cache/purge?key=K` or `?prefix=P` (URL-encoded).
    fn purge(&self, query: Option<&str>) -> Response<Vec<u8>> {
        let arg = |name: &str| {
            query?.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == name).then(|| {
                    percent_encoding::percent_decode_str(&v.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                })
            })
        };
        let purged = match (arg("key"), arg("prefix")) {
            (Some(k), None) if !k.is_empty() => self.cache.purge_fleet(&k, false),
            (None, Some(p)) if !p.is_empty() => self.cache.purge_fleet(&p, true),
            _ => {
                return json(
                    400,
                    serde_json::json!({"error": "give one of key= or prefix=, e.g. POST /cache/purge?key=example.com/page"}),
                )
            }
        };
        json(200, serde_json::json!({ "purged": purged }))
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        if path == "/reload" {
            if session.req_header().method != http::Method::POST {
                return json(405, serde_json::json!({"error": "use POST /reload"}));
            }
            return match self.reloader.reload("POST /reload").await {
                Ok(()) => json(200, serde_json::json!({"result": "reloaded"})),
                Err(errors) => json(
                    422,
                    serde_json::json!({
                        "result": "refused",
                        "errors": errors.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                    }),
                ),
            };
        }
        if path == "/cache/purge" {
            if session.req_header().method != http::Method::POST {
                return json(
                    405,
                    serde_json::json!({"error": "use POST /cache/purge?key=... or ?prefix=..."}),
                );
            }
            return self.purge(session.req_header().uri.query());
        }
        match path.as_str() {
            "/status" => json(200, self.status()),
            "/plugins" => json(200, self.plugins()),
            "/reloads" => {
                let attempts: Vec<_> = self
                    .reloader
                    .history
                    .all()
                    .iter()
                    .map(Attempt::json)
                    .collect();
                json(200, serde_json::json!({ "attempts": attempts }))
            }
            "/diagnostics" => json(200, self.diagnostics()),
            "/metrics" => {
                let mut buf = Vec::new();
                let _ = TextEncoder::new().encode(&prometheus::gather(), &mut buf);
                for (name, v) in self.cache_counters() {
                    buf.extend_from_slice(
                        format!("# TYPE kavro_cache_{name}_total counter\nkavro_cache_{name}_total {v}\n")
                            .as_bytes(),
                    );
                }
                let mut more = String::new();
                let active = self.active.load();
                crate::tls::metrics(&active, &self.acme, &mut more);
                crate::upstream::metrics(&active.services.upstreams, &mut more);
                buf.extend_from_slice(more.as_bytes());
                Response::builder()
                    .status(200)
                    .header("content-type", "text/plain; version=0.0.4")
                    .header("content-length", buf.len())
                    .body(buf)
                    .expect("valid response")
            }
            _ => json(
                404,
                serde_json::json!({"error": "not found", "endpoints": ["/status", "/plugins", "/reloads", "/diagnostics", "/metrics", "POST /reload", "POST /cache/purge"]}),
            ),
        }
    }
}
