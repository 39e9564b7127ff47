//! What may be cached and for how long: the route's settings, a prepare
//! plugin's directive, and the origin's Cache-Control / Expires.

use std::time::{Duration, SystemTime};

use http::{header, Method};
use pingora_http::{RequestHeader, ResponseHeader};

/// A route's cache settings.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// How long a response is kept when nothing more specific says.
    pub ttl: Duration,
    /// Statuses that may be stored.
    pub statuses: Vec<u16>,
    /// Whether the query string is part of the key.
    pub query: bool,
    /// Take the TTL from the origin's Cache-Control / Expires when present.
    pub origin_headers: bool,
    /// Store responses that set cookies (off by default: a cookie meant
    /// for one client would be served to all).
    pub set_cookie: bool,
}

/// What a prepare plugin said about its own response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    NoStore,
    Ttl(Duration),
}

/// A request that may use the cache at all: GET or HEAD, without
/// credentials (a shared cache must not answer for them).
pub fn request_eligible(req: &RequestHeader) -> bool {
    (req.method == Method::GET || req.method == Method::HEAD)
        && !req.headers.contains_key(header::AUTHORIZATION)
}

/// The parts of Cache-Control that decide storing.
#[derive(Debug, Default, PartialEq, Eq)]
struct CacheControl {
    no_store: bool,
    no_cache: bool,
    private: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
}

fn cache_control(head: &ResponseHeader) -> CacheControl {
    let mut cc = CacheControl::default();
    for value in head.headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else {
            // Unreadable directives: the safe reading is "do not store".
            cc.no_store = true;
            continue;
        };
        for part in value.split(',') {
            let (name, arg) = match part.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (part.trim(), None),
            };
            let seconds = || arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
            match name.to_ascii_lowercase().as_str() {
                "no-store" => cc.no_store = true,
                "no-cache" => cc.no_cache = true,
                "private" => cc.private = true,
                "max-age" => cc.max_age = Some(seconds()),
                "s-maxage" => cc.s_maxage = Some(seconds()),
                _ => {}
            }
        }
    }
    cc
}

/// The origin's freshness lifetime from Expires, relative to its Date.
fn expires_lifetime(head: &ResponseHeader) -> Option<Duration> {
    let expires = head.headers.get(header::EXPIRES)?;
    // An Expires that does not parse means "already expired" (RFC 9111 §5.3).
    let Some(at) = expires
        .to_str()
        .ok()
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return Some(Duration::ZERO);
    };
    let now = head
        .headers
        .get(header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or_else(SystemTime::now);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How long this response may be stored, or `None` when it must not be.
///
/// Whatever the route says, responses marked `no-store`, `no-cache` or
/// `private`, with `Vary: *`, or (unless the route allows it) setting
/// cookies are never stored. Kavro never serves an entry past its
/// lifetime, so `must-revalidate` holds by construction.
pub fn storable_for(
    policy: &RoutePolicy,
    head: &ResponseHeader,
    directive: Option<Directive>,
) -> Option<Duration> {
    if !policy.statuses.contains(&head.status.as_u16()) {
        return None;
    }
    if !policy.set_cookie && head.headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    let vary_star = head.headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .map_or(true, |v| v.split(',').any(|p| p.trim() == "*"))
    });
    if vary_star {
        return None;
    }
    let cc = cache_control(head);
    if cc.no_store || cc.no_cache || cc.private {
        return None;
    }
    let ttl = match directive {
        Some(Directive::NoStore) => return None,
        Some(Directive::Ttl(t)) => t,
        None if policy.origin_headers => match cc.s_maxage.or(cc.max_age) {
            Some(s) => Duration::from_secs(s),
            None => expires_lifetime(head).unwrap_or(policy.ttl),
        },
        None => policy.ttl,
    };
    (!ttl.is_zero()).then_some(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RoutePolicy {
        RoutePolicy {
            ttl: Duration::from_secs(10),
            statuses: vec![200],
            query: true,
            origin_headers: true,
            set_cookie: false,
        }
    }

    fn head(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut h = ResponseHeader::build(status, None).unwrap();
        for (k, v) in headers {
            h.append_header(k.to_string(), *v).unwrap();
        }
        h
    }

    #[test]
    fn route_ttl_and_statuses() {
        assert_eq!(
            storable_for(&policy(), &head(200, &[]), None),
            Some(Duration::from_secs(10))
        );
        assert_eq!(storable_for(&policy(), &head(404, &[]), None), None);
    }

    #[test]
    fn origin_headers_set_the_ttl() {
        let p = policy();
        let s = |h: &[(&str, &str)]| storable_for(&p, &head(200, h), None);
        assert_eq!(
            s(&[("cache-control", "public, max-age=5")]),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            s(&[("cache-control", "max-age=5, s-maxage=7")]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(s(&[("cache-control", "max-age=0")]), None);
        assert_eq!(s(&[("cache-control", "no-store")]), None);
        assert_eq!(s(&[("cache-control", "private, max-age=60")]), None);
        assert_eq!(s(&[("cache-control", "no-cache")]), None);
        assert_eq!(
            s(&[("cache-control", "max-age=3, must-revalidate")]),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            s(&[
                ("date", "Mon, 23 Nov 2026 10:00:00 GMT"),
                ("expires", "Mon, 23 Nov 2026 10:00:30 GMT")
            ]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(s(&[("expires", "0")]), None);
        let mut off = policy();
        off.origin_headers = false;
        assert_eq!(
            storable_for(&off, &head(200, &[("cache-control", "max-age=5")]), None),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn cookies_vary_star_and_directives() {
        let p = policy();
        assert_eq!(
            storable_for(&p, &head(200, &[("set-cookie", "a=1")]), None),
            None
        );
        let mut allow = policy();
        allow.set_cookie = true;
        assert!(storable_for(&allow, &head(200, &[("set-cookie", "a=1")]), None).is_some());
        assert_eq!(storable_for(&p, &head(200, &[("vary", "*")]), None), None);
        assert_eq!(
            storable_for(&p, &head(200, &[]), Some(Directive::NoStore)),
            None
        );
        assert_eq!(
            storable_for(
                &p,
                &head(200, &[("cache-control", "max-age=1")]),
                Some(Directive::Ttl(Duration::from_secs(60)))
            ),
            Some(Duration::from_secs(60))
        );
    }
}
