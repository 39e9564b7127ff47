//! Cross-origin resource sharing. Preflight requests (`OPTIONS` with
//! `Origin` and `Access-Control-Request-Method`) are answered in prime,
//! before routing; every other response from an allowed origin gets its
//! CORS headers in package.
//!
//! ```toml
//! [config]
//! # `*`, or a `;`/`,`-separated list of exact origins.
//! allow_origins = "https://app.example.com, https://admin.example.com"
//! allow_methods = "GET, POST, PUT, DELETE"   # default: GET, HEAD, POST
//! allow_headers = "content-type, authorization"  # default: echo the request's
//! expose_headers = "x-request-id"
//! allow_credentials = "true"                 # never combined with a literal `*`
//! max_age = "600"                            # seconds a preflight may be cached
//! ```

use kavro_sdk::{
    config, export, Manifest, Package, Plugin, Prime, PrimeOutcome, Reply, Request, Response,
};

fn list(key: &str) -> Vec<String> {
    config::get(key)
        .unwrap_or_default()
        .split([',', ';'])
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    methods: String,
    headers: Option<String>,
    expose: Option<String>,
    credentials: bool,
    max_age: u32,
}

impl Default for Cors {
    fn default() -> Self {
        let origins = list("allow_origins");
        let methods = list("allow_methods");
        let headers = list("allow_headers");
        let expose = list("expose_headers");
        Cors {
            any_origin: origins.iter().any(|o| o == "*"),
            origins: origins.into_iter().filter(|o| o != "*").collect(),
            methods: if methods.is_empty() {
                "GET, HEAD, POST".to_string()
            } else {
                methods.join(", ")
            },
            headers: (!headers.is_empty()).then(|| headers.join(", ")),
            expose: (!expose.is_empty()).then(|| expose.join(", ")),
            credentials: config::parse::<bool>("allow_credentials").unwrap_or(false),
            max_age: config::parse("max_age").unwrap_or(600),
        }
    }
}

impl Cors {
    /// The Access-Control-Allow-Origin value for a request's Origin, if allowed.
    fn allow_origin(&self, origin: &str) -> Option<String> {
        if self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return Some(origin.to_string());
        }
        if self.any_origin {
            // With credentials the spec forbids `*`: reflect the origin instead.
            return Some(if self.credentials {
                origin.to_string()
            } else {
                "*".to_string()
            });
        }
        None
    }

    /// Whether the value depends on the Origin, so caches must vary on it.
    fn varies(&self) -> bool {
        !self.any_origin || self.credentials || !self.origins.is_empty()
    }
}

impl Plugin for Cors {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    }
}

impl Prime for Cors {
    fn on_request(&self, _: &mut (), req: &Request) -> PrimeOutcome {
        if req.method() != "OPTIONS" {
            return PrimeOutcome::Continue;
        }
        let (Some(origin), Some(_)) = (
            req.header("origin"),
            req.header("access-control-request-method"),
        ) else {
            return PrimeOutcome::Continue;
        };
        let mut reply = Reply::new(204);
        if let Some(allowed) = self.allow_origin(&origin) {
            reply = reply
                .header("access-control-allow-origin", &allowed)
                .header("access-control-allow-methods", &self.methods)
                .header("access-control-max-age", &self.max_age.to_string());
            let headers = self
                .headers
                .clone()
                .or_else(|| req.header("access-control-request-headers"));
            if let Some(h) = headers {
                reply = reply.header("access-control-allow-headers", &h);
            }
            if self.credentials {
                reply = reply.header("access-control-allow-credentials", "true");
            }
        }
        // A disallowed origin gets a 204 without CORS headers: the browser
        // then refuses the real request, and nothing about the policy leaks.
        if self.varies() {
            reply = reply.header("vary", "origin");
        }
        PrimeOutcome::Respond(reply)
    }
}

impl Package for Cors {
    fn on_response(&self, _: &mut (), req: &Request, resp: &Response) {
        let Some(origin) = req.header("origin") else {
            return;
        };
        if self.varies() {
            let _ = resp.append_header("vary", "origin");
        }
        let Some(allowed) = self.allow_origin(&origin) else {
            return;
        };
        let _ = resp.set_header("access-control-allow-origin", &allowed);
        if self.credentials {
            let _ = resp.set_header("access-control-allow-credentials", "true");
        }
        if let Some(e) = &self.expose {
            let _ = resp.set_header("access-control-expose-headers", e);
        }
    }
}

export!(Cors: prime, package);
