//! Chooses the upstream in prepare: by header, by cookie, or by a weighted
//! split (a canary). The upstreams are the host's declared ones; the host
//! refuses a forward to any other.
//!
//! ```toml
//! [config]
//! # `;`-separated, first match wins. `header:NAME=VALUE`, `cookie:NAME=VALUE`,
//! # or `header:NAME` / `cookie:NAME` (present with any value).
//! rules = "header:x-beta=1 -> beta; cookie:canary=always -> beta"
//! # Everything else, by weight.
//! split = "stable:90, beta:10"
//! # What keeps a client on one side of the split: `client-ip`,
//! # `cookie:NAME` or `header:NAME`. Without it every request is drawn anew.
//! sticky = "cookie:session"
//! ```
//!
//! A request no rule or split claims is declined: the route's own action
//! answers it. The chosen upstream is sent along as `x-kavro-upstream`.

use kavro_sdk::{config, export, log, Forward, Manifest, Plugin, Prepare, PrepareOutcome, Request};

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Header(String),
    Cookie(String),
    ClientIp,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    source: Source,
    value: Option<String>,
    upstream: String,
}

fn parse_source(s: &str) -> Result<Source, String> {
    match s.trim().split_once(':') {
        Some(("header", n)) if !n.trim().is_empty() => {
            Ok(Source::Header(n.trim().to_ascii_lowercase()))
        }
        Some(("cookie", n)) if !n.trim().is_empty() => Ok(Source::Cookie(n.trim().to_string())),
        None if s.trim() == "client-ip" => Ok(Source::ClientIp),
        _ => Err(format!(
            "`{s}` is not header:NAME, cookie:NAME or client-ip"
        )),
    }
}

fn parse_rule(text: &str) -> Result<Rule, String> {
    let (cond, upstream) = text
        .split_once("->")
        .ok_or_else(|| format!("`{text}` has no `->`"))?;
    let upstream = upstream.trim().to_string();
    if upstream.is_empty() {
        return Err(format!("`{text}` names no upstream"));
    }
    let (src, value) = match cond.split_once('=') {
        Some((s, v)) => (s, Some(v.trim().to_string())),
        None => (cond, None),
    };
    Ok(Rule {
        source: parse_source(src)?,
        value,
        upstream,
    })
}

fn parse_split(text: &str) -> Result<Vec<(String, u32)>, String> {
    text.split([',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|part| {
            let (name, weight) = part
                .rsplit_once(':')
                .ok_or_else(|| format!("`{part}` is not UPSTREAM:WEIGHT"))?;
            let weight = weight
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("`{weight}` is not a weight in `{part}`"))?;
            Ok((name.trim().to_string(), weight))
        })
        .collect()
}

fn cookie(req: &Request, name: &str) -> Option<String> {
    req.header_all("cookie")
        .iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn read(req: &Request, source: &Source) -> Option<String> {
    match source {
        Source::Header(n) => req.header(n),
        Source::Cookie(n) => cookie(req, n),
        Source::ClientIp => Some(req.client_ip()),
    }
}

/// FNV-1a: stable across instances and versions, so a sticky client
/// stays on its side through hot-swaps.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The side of the split that `key` falls on.
fn pick<'a>(split: &'a [(String, u32)], key: &str) -> Option<&'a str> {
    let total: u64 = split.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut point = fnv1a(key.as_bytes()) % total;
    for (name, w) in split {
        let w = u64::from(*w);
        if point < w {
            return Some(name);
        }
        point -= w;
    }
    None
}

struct Router {
    rules: Vec<Rule>,
    split: Vec<(String, u32)>,
    sticky: Option<Source>,
}

impl Router {
    fn load() -> Router {
        let complain = |e: String| log::error(&format!("router: {e}"));
        let rules = config::get("rules")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .filter_map(|r| parse_rule(r).map_err(complain).ok())
            .collect();
        let split = parse_split(&config::get("split").unwrap_or_default())
            .map_err(complain)
            .unwrap_or_default();
        let sticky = config::get("sticky").and_then(|s| parse_source(&s).map_err(complain).ok());
        Router {
            rules,
            split,
            sticky,
        }
    }

    fn choose(&self, req: &Request) -> Option<String> {
        for rule in &self.rules {
            if let Some(found) = read(req, &rule.source) {
                if rule.value.as_ref().is_none_or(|v| *v == found) {
                    return Some(rule.upstream.clone());
                }
            }
        }
        let key = self
            .sticky
            .as_ref()
            .and_then(|s| read(req, s))
            .unwrap_or_else(|| req.id());
        pick(&self.split, &key).map(str::to_string)
    }
}

/// The plugin value lives as long as its instance: config is read once.
impl Default for Router {
    fn default() -> Self {
        Router::load()
    }
}

impl Plugin for Router {
    type State = ();
    fn manifest(&self) -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    }
}

impl Prepare for Router {
    fn on_prepare(&self, _: &mut (), req: &Request) -> PrepareOutcome {
        match self.choose(req) {
            Some(up) => PrepareOutcome::Forward(Forward::to(&up).header("x-kavro-upstream", &up)),
            None => PrepareOutcome::Decline,
        }
    }
}

export!(Router: prepare);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        let r = parse_rule("header:X-Beta=1 -> beta").unwrap();
        assert_eq!(r.source, Source::Header("x-beta".into()));
        assert_eq!(r.value.as_deref(), Some("1"));
        assert_eq!(r.upstream, "beta");
        assert!(parse_rule("query:x -> a").is_err());
        assert_eq!(
            parse_split("stable:90, beta:10").unwrap(),
            vec![("stable".into(), 90), ("beta".into(), 10)]
        );
        assert!(parse_split("stable").is_err());
    }

    #[test]
    fn split_is_weighted_and_stable() {
        let split = parse_split("a:90, b:10").unwrap();
        let b = (0..10_000)
            .filter(|i| pick(&split, &format!("client-{i}")) == Some("b"))
            .count();
        assert!((700..1300).contains(&b), "{b}");
        assert_eq!(pick(&split, "x"), pick(&split, "x"));
        assert_eq!(pick(&[], "x"), None);
    }
}
