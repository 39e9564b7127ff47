//! Answers matching requests with a redirect in prime, before routing and
//! the cache, so a redirected request costs no upstream work.
//!
//! ```toml
//! [config]
//! # Send every plain-HTTP request to HTTPS (308 keeps the method and body).
//! https = "true"
//! # Optional: the HTTPS port when it is not 443.
//! https_port = "8443"
//! # `FROM -> TO [STATUS]`, `;`-separated, first match wins. FROM is an
//! # exact path or a prefix ending in `/*`; a `*` in TO takes the rest of
//! # the path. The query is kept unless TO has its own. STATUS defaults to 301.
//! rules = "/old -> /new; /blog/* -> https://blog.example.com/* 302"
//! ```

use kavro_sdk::{config, export, log, Manifest, Plugin, Prime, PrimeOutcome, Reply, Request};

#[derive(Debug, Clone, PartialEq)]
enum From {
    Exact(String),
    /// The part before `*`, ending in `/`.
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    from: From,
    to: String,
    status: u16,
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    let (from, rest) = text
        .split_once("->")
        .ok_or_else(|| format!("`{text}` has no `->`"))?;
    let from = from.trim();
    let mut parts = rest.split_whitespace();
    let to = parts
        .next()
        .ok_or_else(|| format!("`{text}` has no target"))?
        .to_string();
    let status = match parts.next() {
        None => 301,
        Some(s) => match s.parse::<u16>() {
            Ok(n @ (301 | 302 | 303 | 307 | 308)) => n,
            _ => return Err(format!("`{s}` is not a redirect status in `{text}`")),
        },
    };
    if !from.starts_with('/') {
        return Err(format!("`{from}` does not start with /"));
    }
    let from = match from.strip_suffix('*') {
        Some(p) if p.ends_with('/') => From::Prefix(p.to_string()),
        None if !from.contains('*') => From::Exact(from.to_string()),
        _ => return Err(format!("`*` may only end a `/*` prefix in `{from}`")),
    };
    Ok(Rule { from, to, status })
}

impl Rule {
    /// The Location for `path` (and `query`), if the rule matches.
    fn apply(&self, path: &str, query: Option<&str>) -> Option<String> {
        let rest = match &self.from {
            From::Exact(p) => (p == path).then_some("")?,
            From::Prefix(p) => path.strip_prefix(p.as_str())?,
        };
        let mut location = self.to.replacen('*', rest, 1);
        if let Some(q) = query.filter(|_| !location.contains('?')) {
            location.push('?');
            location.push_str(q);
        }
        Some(location)
    }
}

struct Redirects {
    https: bool,
    https_port: Option<u16>,
    rules: Vec<Rule>,
}

impl Default for Redirects {
    fn default() -> Self {
        let rules = config::get("rules")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .filter_map(|r| match parse_rule(r) {
                Ok(rule) => Some(rule),
                Err(e) => {
                    log::error(&format!("redirects: ignoring a rule: {e}"));
                    None
                }
            })
            .collect();
        Redirects {
            https: config::parse::<bool>("https").unwrap_or(false),
            https_port: config::parse("https_port"),
            rules,
        }
    }
}

impl Plugin for Redirects {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    }
}

/// The host part of an authority, without a port.
fn host_only(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

impl Prime for Redirects {
    fn on_request(&self, _: &mut (), req: &Request) -> PrimeOutcome {
        if self.https && req.scheme() == "http" {
            if let Some(authority) = req.authority() {
                let host = host_only(&authority);
                let port = self.https_port.map(|p| format!(":{p}")).unwrap_or_default();
                let location = format!("https://{host}{port}{}", req.uri());
                return PrimeOutcome::Respond(Reply::redirect(308, &location));
            }
        }
        if self.rules.is_empty() {
            return PrimeOutcome::Continue;
        }
        let path = req.path();
        let query = req.query();
        for rule in &self.rules {
            if let Some(location) = rule.apply(&path, query.as_deref()) {
                return PrimeOutcome::Respond(Reply::redirect(rule.status, &location));
            }
        }
        PrimeOutcome::Continue
    }
}

export!(Redirects: prime);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_apply() {
        let r = parse_rule("/old -> /new").unwrap();
        assert_eq!(r.status, 301);
        assert_eq!(r.apply("/old", Some("a=1")), Some("/new?a=1".into()));
        assert_eq!(r.apply("/old/x", None), None);
        let r = parse_rule("/blog/* -> https://blog.example.com/* 302").unwrap();
        assert_eq!(
            r.apply("/blog/2024/post", None),
            Some("https://blog.example.com/2024/post".into())
        );
        assert!(parse_rule("/a -> /b 200").is_err());
        assert!(parse_rule("a -> /b").is_err());
        assert!(parse_rule("/a*b -> /b").is_err());
        assert_eq!(host_only("example.com:8080"), "example.com");
        assert_eq!(host_only("[::1]:80"), "[::1]");
    }
}
