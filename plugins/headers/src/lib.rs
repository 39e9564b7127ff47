//! Sets, appends and removes request headers (in prime) and response
//! headers (in package), as the operator configures:
//!
//! ```toml
//! [config]
//! request_set = "x-env: prod; x-team: edge"
//! request_remove = "x-debug"
//! response_set = "x-served-by: kavro"
//! response_append = "vary: accept-encoding"
//! response_remove = "server; x-powered-by"
//! ```
//!
//! Lists are `;`-separated; pairs are `name: value`.

use kavro_sdk::{
    config, export, Manifest, Package, Plugin, Prime, PrimeOutcome, Request, Response,
};

type Pairs = Vec<(String, String)>;

#[derive(Default)]
struct Rules {
    request_set: Pairs,
    request_append: Pairs,
    request_remove: Vec<String>,
    response_set: Pairs,
    response_append: Pairs,
    response_remove: Vec<String>,
}

fn names(key: &str) -> Vec<String> {
    config::get(key)
        .unwrap_or_default()
        .split(';')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

fn pairs(key: &str) -> Pairs {
    config::get(key)
        .unwrap_or_default()
        .split(';')
        .filter_map(|p| p.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(n, _)| !n.is_empty())
        .collect()
}

struct Headers {
    rules: Rules,
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            rules: Rules {
                request_set: pairs("request_set"),
                request_append: pairs("request_append"),
                request_remove: names("request_remove"),
                response_set: pairs("response_set"),
                response_append: pairs("response_append"),
                response_remove: names("response_remove"),
            },
        }
    }
}

impl Plugin for Headers {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    }
}

impl Prime for Headers {
    fn on_request(&self, _: &mut (), req: &Request) -> PrimeOutcome {
        let r = &self.rules;
        for n in &r.request_remove {
            let _ = req.remove_header(n);
        }
        for (n, v) in &r.request_set {
            let _ = req.set_header(n, v);
        }
        for (n, v) in &r.request_append {
            let _ = req.append_header(n, v);
        }
        PrimeOutcome::Continue
    }
}

impl Package for Headers {
    fn on_response(&self, _: &mut (), _: &Request, resp: &Response) {
        let r = &self.rules;
        for n in &r.response_remove {
            let _ = resp.remove_header(n);
        }
        for (n, v) in &r.response_set {
            let _ = resp.set_header(n, v);
        }
        for (n, v) in &r.response_append {
            let _ = resp.append_header(n, v);
        }
    }
}

export!(Headers: prime, package);
