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
    /// How long past its freshness a stale entry is served while one
    /// background request refreshes it, when the origin does not say.
    pub stale_while_revalidate: Duration,
    /// How long past its freshness a stale entry is served when the origin
    /// fails, when the origin does not say.
    pub stale_if_error: Duration,
    /// How long past its freshness an entry with a validator is kept to be
    /// revalidated.
    pub keep: Duration,
}

/// How long a stored response stays fresh, and what may be done with it
/// once stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Zero for a response that must be revalidated before every use.
    pub fresh: Duration,
    /// Past `fresh`: served while a background request refreshes it.
    pub stale_while_revalidate: Duration,
    /// Past `fresh`: served when the origin fails.
    pub stale_if_error: Duration,
    /// Past `fresh`: kept to be revalidated (it has a validator).
    pub keep: Duration,
}

impl Lifetime {
    /// How long the entry is held at all.
    pub fn retained(&self) -> Duration {
        let past = self
            .stale_while_revalidate
            .max(self.stale_if_error)
            .max(self.keep);
        self.fresh.saturating_add(past)
    }
}

/// What a prepare plugin said about its own response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    NoStore,
    Ttl(Duration),
}

/// A request that may use the cache at all: GET or HEAD, without
/// credentials (a shared cache must not answer for them), and not asking
/// to switch protocols (a WebSocket handshake).
pub fn request_eligible(req: &RequestHeader) -> bool {
    (req.method == Method::GET || req.method == Method::HEAD)
        && !req.headers.contains_key(header::AUTHORIZATION)
        && !req.headers.contains_key(header::UPGRADE)
}

/// The directives that decide storing, from the field that speaks to
/// Kavro: `CDN-Cache-Control` (RFC 9213), else `Surrogate-Control`, else
/// `Cache-Control`.
#[derive(Debug, Default, PartialEq, Eq)]
struct CacheControl {
    no_store: bool,
    no_cache: bool,
    private: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
    public: bool,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    must_revalidate: bool,
    stale_while_revalidate: Option<u64>,
    stale_if_error: Option<u64>,
    /// Read from a field meant for Kavro (RFC 9213), whose lifetime stands
    /// alone: `Expires` does not apply.
    targeted: bool,
    /// A directive this cache knows was there.
    known: bool,
}

/// RFC 9111 §1.2.2: a delta-seconds too large to hold is 2^31.
const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// A delta-seconds argument: digits (quoted, too, as senders write it),
/// saturating; anything else makes the response stale (RFC 9111 §4.2.1).
fn delta_seconds(arg: Option<&str>) -> u64 {
    let Some(digits) = arg.map(|a| a.trim_matches('"')) else {
        return 0;
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    digits
        .parse()
        .unwrap_or(DELTA_SECONDS_MAX)
        .min(DELTA_SECONDS_MAX)
}

/// The directives of one field, or `None` when it is absent or unreadable.
fn directives(head: &ResponseHeader, field: &str) -> Option<CacheControl> {
    let mut values = head.headers.get_all(field).iter().peekable();
    values.peek()?;
    let mut cc = CacheControl::default();
    for value in values {
        let value = value.to_str().ok()?;
        for part in value.split(',') {
            let (name, arg) = match part.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim())),
                None => (part.trim(), None),
            };
            // A directive given twice: the first counts (RFC 9111 §4.2.1).
            let known = match name.to_ascii_lowercase().as_str() {
                "no-store" => {
                    cc.no_store = true;
                    true
                }
                "no-cache" => {
                    cc.no_cache = true;
                    true
                }
                "private" => {
                    cc.private = true;
                    true
                }
                "public" => {
                    cc.public = true;
                    true
                }
                "max-age" => {
                    cc.max_age.get_or_insert_with(|| delta_seconds(arg));
                    true
                }
                "s-maxage" => {
                    cc.s_maxage.get_or_insert_with(|| delta_seconds(arg));
                    true
                }
                "must-revalidate" | "proxy-revalidate" => {
                    cc.must_revalidate = true;
                    true
                }
                "stale-while-revalidate" => {
                    cc.stale_while_revalidate
                        .get_or_insert_with(|| delta_seconds(arg));
                    true
                }
                "stale-if-error" => {
                    cc.stale_if_error.get_or_insert_with(|| delta_seconds(arg));
                    true
                }
                _ => false,
            };
            cc.known |= known;
        }
    }
    Some(cc)
}

fn cache_control(head: &ResponseHeader) -> CacheControl {
    // An unreadable Cache-Control is read as "do not store".
    let general =
        directives(head, header::CACHE_CONTROL.as_str()).unwrap_or_else(|| CacheControl {
            no_store: head.headers.contains_key(header::CACHE_CONTROL),
            ..Default::default()
        });
    // A targeted field that cannot be read, or holds nothing this cache
    // knows (`Surrogate-Control: content="ESI/1.0"`), is ignored (RFC 9213
    // §2.1). CDN-Cache-Control replaces Cache-Control whole;
    // Surrogate-Control, older and looser, cannot lift its `private` or
    // `no-store`.
    let targeted = |name| directives(head, name).filter(|cc| cc.known);
    if let Some(cc) = targeted("cdn-cache-control") {
        return CacheControl {
            targeted: true,
            ..cc
        };
    }
    if let Some(cc) = targeted("surrogate-control") {
        return CacheControl {
            targeted: true,
            private: cc.private || general.private,
            no_store: cc.no_store || general.no_store,
            ..cc
        };
    }
    general
}

fn date(head: &ResponseHeader, name: header::HeaderName) -> Option<SystemTime> {
    head.headers
        .get(name)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
}

/// The origin's freshness lifetime from Expires, relative to its Date.
fn expires_lifetime(head: &ResponseHeader, now: SystemTime) -> Option<Duration> {
    head.headers.get(header::EXPIRES)?;
    // An Expires that does not parse means "already expired" (RFC 9111 §5.3).
    let Some(at) = date(head, header::EXPIRES) else {
        return Some(Duration::ZERO);
    };
    let sent = date(head, header::DATE).unwrap_or(now);
    Some(at.duration_since(sent).unwrap_or(Duration::ZERO))
}

/// Statuses a cache may give a heuristic lifetime (RFC 9110 §15.1).
const HEURISTIC_STATUSES: &[u16] = &[200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// RFC 9111 §4.2.2: a tenth of the time since `Last-Modified`, for a
/// response without an explicit lifetime; `None` without Last-Modified.
fn heuristic_lifetime(
    head: &ResponseHeader,
    cc: &CacheControl,
    now: SystemTime,
) -> Option<Duration> {
    if !cc.public && !HEURISTIC_STATUSES.contains(&head.status.as_u16()) {
        return None;
    }
    let modified = date(head, header::LAST_MODIFIED)?;
    let sent = date(head, header::DATE).unwrap_or(now);
    Some(sent.duration_since(modified).unwrap_or(Duration::ZERO) / 10)
}

/// How old a response already is when it arrives (RFC 9111 §4.2.3): the
/// larger of its `Age` and the time since its `Date` (a `Date` in the
/// future counts nothing). Kavro stores as the response arrives, so no
/// round trip is added.
pub fn initial_age(head: &ResponseHeader, now: SystemTime) -> Duration {
    let age = head
        .headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .map_or(0, |v| delta_seconds(Some(v.trim())));
    // Whole seconds, as Date has them: a response sent this second is 0 s old.
    let apparent = date(head, header::DATE)
        .and_then(|d| now.duration_since(d).ok())
        .map_or(Duration::ZERO, |a| Duration::from_secs(a.as_secs()));
    apparent.max(Duration::from_secs(age))
}

/// Whether a response carries a validator (RFC 9110 §8.8): an `ETag` or
/// a `Last-Modified`, with which a stale copy can be revalidated.
pub fn has_validator(head: &ResponseHeader) -> bool {
    head.headers.contains_key(header::ETAG) || head.headers.contains_key(header::LAST_MODIFIED)
}

/// How long this response may be stored, or `None` when it must not be.
///
/// Whatever the route says, interim (1xx) responses and those marked
/// `no-store` or `private`, with `Vary: *`, or (unless the route allows
/// it) setting cookies are never stored. `no-cache` stores a response
/// with a validator as stale from the start, so that every use
/// revalidates it (RFC 9111 §5.2.2.4), and one without is not stored.
/// With `origin_headers`, the lifetime is the origin's (`s-maxage`,
/// `max-age`, `Expires`, or a tenth of the time since `Last-Modified`, at
/// most the route's `ttl`), less the age the response arrived with.
///
/// Past freshness, the origin's `stale-while-revalidate` and
/// `stale-if-error` (RFC 5861), else the route's, say how long a stale
/// copy may still be served. `must-revalidate`, `proxy-revalidate` and
/// `no-cache` forbid it, and so does `s-maxage` (RFC 9111 §5.2.2.10) unless
/// the origin gave its own `stale-*` alongside, as CDN setups such as
/// `s-maxage=60, stale-while-revalidate=30` mean it.
pub fn storable_for(
    policy: &RoutePolicy,
    head: &ResponseHeader,
    directive: Option<Directive>,
) -> Option<Lifetime> {
    if head.status.is_informational() || !policy.statuses.contains(&head.status.as_u16()) {
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
    if cc.no_store || cc.private {
        return None;
    }
    let validator = has_validator(head);
    if cc.no_cache && !validator {
        return None;
    }
    let now = SystemTime::now();
    let fresh = match directive {
        Some(Directive::NoStore) => return None,
        Some(Directive::Ttl(t)) => t,
        None if policy.origin_headers => {
            let lifetime = match cc.s_maxage.or(cc.max_age) {
                Some(s) => Duration::from_secs(s),
                None => (!cc.targeted)
                    .then(|| expires_lifetime(head, now))
                    .flatten()
                    .or_else(|| heuristic_lifetime(head, &cc, now).map(|h| h.min(policy.ttl)))
                    .unwrap_or(policy.ttl),
            };
            lifetime.saturating_sub(initial_age(head, now))
        }
        None => policy.ttl,
    };
    let fresh = if cc.no_cache { Duration::ZERO } else { fresh };
    let never_stale = cc.must_revalidate || cc.no_cache;
    let origin_says = |d: Option<u64>| d.map(Duration::from_secs);
    let window = |origin: Option<u64>, route: Duration| {
        if never_stale {
            Duration::ZERO
        } else if let Some(d) = origin_says(origin) {
            d
        } else if cc.s_maxage.is_some() && policy.origin_headers {
            Duration::ZERO
        } else {
            route
        }
    };
    let lifetime = Lifetime {
        fresh,
        stale_while_revalidate: window(cc.stale_while_revalidate, policy.stale_while_revalidate),
        stale_if_error: window(cc.stale_if_error, policy.stale_if_error),
        keep: if validator {
            policy.keep
        } else {
            Duration::ZERO
        },
    };
    (!lifetime.retained().is_zero()).then_some(lifetime)
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
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            keep: Duration::from_secs(600),
        }
    }

    /// The freshness alone, for the rules that decide it.
    fn storable_for(p: &RoutePolicy, h: &ResponseHeader, d: Option<Directive>) -> Option<Duration> {
        super::storable_for(p, h, d).map(|l| l.fresh)
    }

    fn lifetime(p: &RoutePolicy, h: &[(&str, &str)]) -> Option<Lifetime> {
        super::storable_for(p, &head(200, h), None)
    }

    /// RFC 9111 §5.2.2.4: no-cache with a validator is stored stale, to be
    /// revalidated before each use; without one it is not stored. So is
    /// max-age=0 with a validator.
    #[test]
    fn rfc9111_5_2_2_4_no_cache_and_max_age_0_with_validators() {
        let p = policy();
        let l = lifetime(&p, &[("cache-control", "no-cache"), ("etag", "\"a\"")]).unwrap();
        assert_eq!((l.fresh, l.keep), (Duration::ZERO, p.keep));
        assert_eq!(lifetime(&p, &[("cache-control", "no-cache")]), None);
        let l = lifetime(
            &p,
            &[
                ("cache-control", "max-age=0"),
                ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
            ],
        )
        .unwrap();
        assert_eq!(l.fresh, Duration::ZERO);
        assert_eq!(lifetime(&p, &[("cache-control", "max-age=0")]), None);
    }

    /// RFC 5861 and RFC 9111 §5.2.2.2: stale windows from the origin, else
    /// the route; none under must-revalidate, no-cache, or a bare s-maxage.
    #[test]
    fn rfc5861_stale_windows() {
        let mut p = policy();
        p.stale_if_error = Duration::from_secs(100);
        let l = lifetime(
            &p,
            &[(
                "cache-control",
                "max-age=5, stale-while-revalidate=30, stale-if-error=60",
            )],
        )
        .unwrap();
        assert_eq!(
            (l.fresh, l.stale_while_revalidate, l.stale_if_error),
            (secs(5).unwrap(), secs(30).unwrap(), secs(60).unwrap())
        );
        assert_eq!(l.retained(), secs(65).unwrap());
        let l = lifetime(&p, &[("cache-control", "max-age=5")]).unwrap();
        assert_eq!(
            (l.stale_while_revalidate, l.stale_if_error),
            (Duration::ZERO, secs(100).unwrap())
        );
        let l = lifetime(
            &p,
            &[(
                "cache-control",
                "max-age=5, must-revalidate, stale-if-error=60",
            )],
        )
        .unwrap();
        assert_eq!(
            (l.stale_while_revalidate, l.stale_if_error),
            (Duration::ZERO, Duration::ZERO)
        );
        let l = lifetime(&p, &[("cache-control", "s-maxage=5")]).unwrap();
        assert_eq!(
            l.stale_if_error,
            Duration::ZERO,
            "s-maxage is proxy-revalidate"
        );
        let l = lifetime(
            &p,
            &[("cache-control", "s-maxage=5, stale-while-revalidate=9")],
        )
        .unwrap();
        assert_eq!(l.stale_while_revalidate, secs(9).unwrap());
        // Stale-only: kept to answer an error, though never fresh.
        let l = lifetime(&p, &[("cache-control", "max-age=0")]).unwrap();
        assert_eq!(
            (l.fresh, l.stale_if_error),
            (Duration::ZERO, secs(100).unwrap())
        );
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
            s(&[("cache-control", "no-cache"), ("etag", "\"v\"")]),
            secs(0)
        );
        assert_eq!(
            s(&[("cache-control", "max-age=3, must-revalidate")]),
            Some(Duration::from_secs(3))
        );
        let now = SystemTime::now();
        let (date, expires) = (
            httpdate::fmt_http_date(now),
            httpdate::fmt_http_date(now + Duration::from_secs(30)),
        );
        // 29 when a second ticks over between the Date and the check.
        let ttl = s(&[("date", &date), ("expires", &expires)]).unwrap();
        assert!((29..=30).contains(&ttl.as_secs()), "{ttl:?}");
        assert_eq!(s(&[("expires", "0")]), None);
        let mut off = policy();
        off.origin_headers = false;
        assert_eq!(
            storable_for(&off, &head(200, &[("cache-control", "max-age=5")]), None),
            Some(Duration::from_secs(10))
        );
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    /// RFC 9111 §4.2.3: the age a response arrives with is part of its age.
    #[test]
    fn rfc9111_4_2_3_age_and_date_shorten_the_lifetime() {
        let p = policy();
        let s = |h: &[(&str, &str)]| storable_for(&p, &head(200, h), None);
        assert_eq!(
            s(&[("cache-control", "max-age=60"), ("age", "20")]),
            secs(40)
        );
        assert_eq!(s(&[("cache-control", "max-age=60"), ("age", "60")]), None);
        let an_hour_ago = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(3600));
        assert_eq!(
            s(&[("cache-control", "max-age=60"), ("date", &an_hour_ago)]),
            None,
            "sent an hour ago: already stale"
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        assert_eq!(
            s(&[("cache-control", "max-age=60"), ("date", &later)]),
            secs(60),
            "a Date in the future adds no age"
        );
        assert_eq!(
            s(&[("cache-control", "max-age=60"), ("age", "x")]),
            secs(60)
        );
    }

    /// RFC 9111 §4.2.2: a tenth of the time since Last-Modified, at most
    /// the route's ttl; the route's ttl without Last-Modified.
    #[test]
    fn rfc9111_4_2_2_heuristic_freshness() {
        let mut p = policy();
        p.ttl = Duration::from_secs(3600);
        let now = SystemTime::now();
        let date = httpdate::fmt_http_date(now);
        let modified = httpdate::fmt_http_date(now - Duration::from_secs(1000));
        let h = head(200, &[("date", &date), ("last-modified", &modified)]);
        let ttl = storable_for(&p, &h, None).unwrap();
        assert!((99..=100).contains(&ttl.as_secs()), "{ttl:?}");
        p.ttl = Duration::from_secs(10);
        assert_eq!(storable_for(&p, &h, None), secs(10), "bounded by the route");
        assert_eq!(storable_for(&p, &head(200, &[]), None), secs(10));
    }

    /// RFC 9213: CDN-Cache-Control, else Surrogate-Control, speaks to
    /// Kavro over Cache-Control.
    #[test]
    fn rfc9213_targeted_fields_come_first() {
        let p = policy();
        let s = |h: &[(&str, &str)]| storable_for(&p, &head(200, h), None);
        assert_eq!(
            s(&[
                ("cache-control", "max-age=5"),
                ("cdn-cache-control", "max-age=600")
            ]),
            secs(600)
        );
        assert_eq!(
            s(&[
                ("cache-control", "private"),
                ("cdn-cache-control", "max-age=600")
            ]),
            secs(600),
            "private speaks to shared caches the CDN field overrides"
        );
        assert_eq!(
            s(&[
                ("cache-control", "max-age=600"),
                ("cdn-cache-control", "no-store")
            ]),
            None
        );
        assert_eq!(
            s(&[
                ("cache-control", "max-age=5"),
                ("surrogate-control", "max-age=30")
            ]),
            secs(30)
        );
        assert_eq!(
            s(&[
                ("surrogate-control", "max-age=30"),
                ("cdn-cache-control", "max-age=40")
            ]),
            secs(40)
        );
        // Nothing Kavro knows in it, or empty: Cache-Control decides.
        assert_eq!(
            s(&[
                ("cache-control", "private, no-store"),
                ("surrogate-control", "content=\"ESI/1.0\"")
            ]),
            None
        );
        assert_eq!(
            s(&[("cache-control", "no-store"), ("cdn-cache-control", "")]),
            None
        );
        // Surrogate-Control cannot lift Cache-Control's private.
        assert_eq!(
            s(&[
                ("cache-control", "private"),
                ("surrogate-control", "max-age=30")
            ]),
            None
        );
        // A targeted field's lifetime stands alone: Expires does not apply.
        assert_eq!(
            s(&[("cdn-cache-control", "public"), ("expires", "0")]),
            secs(10)
        );
    }

    /// RFC 9111 §1.2.2 and §4.2.1: large values saturate, a directive
    /// given twice counts once (the first), a bad number is stale.
    #[test]
    fn rfc9111_malformed_directives() {
        let p = policy();
        let s = |h: &[(&str, &str)]| storable_for(&p, &head(200, h), None);
        assert_eq!(
            s(&[("cache-control", "max-age=99999999999999999999999")]),
            secs(1 << 31)
        );
        assert_eq!(s(&[("cache-control", "max-age=\"30\"")]), secs(30));
        assert_eq!(s(&[("cache-control", "max-age=5, max-age=60")]), secs(5));
        assert_eq!(
            s(&[
                ("cache-control", "max-age=5"),
                ("cache-control", "max-age=60")
            ]),
            secs(5)
        );
        assert_eq!(s(&[("cache-control", "max-age=-1")]), None);
        assert_eq!(s(&[("cache-control", "max-age=1e3")]), None);
        assert_eq!(
            s(&[("cache-control", "bogus, max-age=7, x=\"y\"")]),
            secs(7)
        );
        assert_eq!(s(&[("expires", "yesterday-ish")]), None, "RFC 9111 §5.3");
    }

    /// RFC 9111 §3: an interim response is never stored, whatever the route.
    #[test]
    fn rfc9111_3_interim_responses_are_never_stored() {
        let mut p = policy();
        p.statuses = vec![100, 103, 200];
        assert_eq!(storable_for(&p, &head(103, &[]), None), None);
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
