//! A sliding-window rate limit. Each request adds one to its key's counter
//! for the current window, through the KV store's atomic `increment`, so
//! that every instance and every worker counts in the same place and two
//! requests can never take the same last slot. The count it sees, plus the
//! previous window's weighted by how much of it still overlaps the sliding
//! window, decides: over `limit`, 429 with `Retry-After`, and the request
//! takes its count back.
//!
//! ```toml
//! [config]
//! limit = "100"      # requests per window; without it, nothing is limited
//! window_s = "60"    # default 60
//! key = "ip"         # "ip" (default), "header:NAME" (the client's IP
//!                    # when absent), or "route" (one count for every
//!                    # request the plugin sees)
//! ```
//!
//! Every response it saw gets `RateLimit-Limit`, `RateLimit-Remaining`,
//! `RateLimit-Reset` and `RateLimit-Policy`. Needs capability "kv".

use std::time::{SystemTime, UNIX_EPOCH};

use kavro_sdk::{
    config, export, kv, log, Manifest, Package, Plugin, Prime, PrimeOutcome, Reply, Request,
    Response,
};

enum Key {
    Ip,
    Header(String),
    Route,
}

struct RateLimit {
    limit: Option<u64>,
    window_ms: u64,
    key: Key,
}

impl Default for RateLimit {
    fn default() -> Self {
        let key = match config::get("key").as_deref().map(str::trim) {
            None | Some("ip") => Key::Ip,
            Some("route") => Key::Route,
            Some(other) => match other.strip_prefix("header:") {
                Some(name) if !name.trim().is_empty() => {
                    Key::Header(name.trim().to_ascii_lowercase())
                }
                _ => {
                    log::error(&format!(
                        "key = {other:?} is not \"ip\", \"header:NAME\" or \"route\"; limiting by client IP"
                    ));
                    Key::Ip
                }
            },
        };
        let limit = config::parse::<u64>("limit").filter(|l| *l > 0);
        if limit.is_none() {
            log::warn("no `limit` in the plugin's config: nothing is limited");
        }
        RateLimit {
            limit,
            window_ms: config::parse::<u64>("window_s")
                .filter(|w| *w > 0)
                .unwrap_or(60)
                * 1000,
            key,
        }
    }
}

/// What prime decided, for package's headers.
#[derive(Default)]
struct Verdict {
    counted: Option<Counted>,
}

struct Counted {
    limit: u64,
    remaining: u64,
    reset_s: u64,
}

impl RateLimit {
    fn who(&self, req: &Request) -> String {
        match &self.key {
            Key::Ip => format!("ip:{}", req.client_ip()),
            Key::Header(name) => match req.header(name) {
                // Bounded: the value is the client's to choose.
                Some(v) => format!("h:{}", v.chars().take(128).collect::<String>()),
                None => format!("ip:{}", req.client_ip()),
            },
            Key::Route => "route".to_string(),
        }
    }

    fn headers(&self, c: &Counted) -> [(&'static str, String); 4] {
        [
            ("ratelimit-limit", c.limit.to_string()),
            ("ratelimit-remaining", c.remaining.to_string()),
            ("ratelimit-reset", c.reset_s.to_string()),
            (
                "ratelimit-policy",
                format!("{};w={}", c.limit, self.window_ms / 1000),
            ),
        ]
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Plugin for RateLimit {
    type State = Verdict;
    fn manifest(&self) -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")).needs("kv")
    }
}

impl Prime for RateLimit {
    fn on_request(&self, verdict: &mut Verdict, req: &Request) -> PrimeOutcome {
        let Some(limit) = self.limit else {
            return PrimeOutcome::Continue;
        };
        let now = now_ms();
        let window = now / self.window_ms;
        let into = now % self.window_ms;
        let who = self.who(req);
        let current = format!("{who}:{window}");
        // Kept for two windows: this one, then as the next one's previous.
        let count = match kv::increment(&current, 1, Some(2 * self.window_ms)) {
            Ok(n) => n.max(0) as u64,
            Err(e) => {
                // The store is full or failing: admitting is the lesser harm.
                log::warn(&format!("counting {who} failed, request admitted: {e:?}"));
                return PrimeOutcome::Continue;
            }
        };
        let previous = kv::get(&format!("{who}:{}", window.wrapping_sub(1)))
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        // The previous window's share, rounded up: it never lends a slot it used.
        let estimate = count
            + previous
                .saturating_mul(self.window_ms - into)
                .div_ceil(self.window_ms);
        let reset_s = (self.window_ms - into).div_ceil(1000);
        if estimate > limit {
            // A refused request does not count against the next ones.
            let _ = kv::increment(&current, -1, None);
            let counted = Counted {
                limit,
                remaining: 0,
                reset_s,
            };
            let mut reply = Reply::new(429)
                .header("retry-after", &reset_s.to_string())
                .header("content-type", "text/plain; charset=utf-8")
                .no_store()
                .body(format!(
                    "429 Too Many Requests: over {limit} requests in {} s; retry in {reset_s} s\n",
                    self.window_ms / 1000
                ));
            for (name, value) in self.headers(&counted) {
                reply = reply.header(name, &value);
            }
            return PrimeOutcome::Respond(reply);
        }
        verdict.counted = Some(Counted {
            limit,
            remaining: limit - estimate,
            reset_s,
        });
        PrimeOutcome::Continue
    }
}

impl Package for RateLimit {
    fn on_response(&self, verdict: &mut Verdict, _: &Request, resp: &Response) {
        if let Some(c) = &verdict.counted {
            for (name, value) in self.headers(c) {
                let _ = resp.set_header(name, &value);
            }
        }
    }
}

export!(RateLimit: prime, package);
