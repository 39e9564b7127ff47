//! The cache's decisions on arbitrary heads: whether a request may use the
//! cache, whether and how long a response is stored (Cache-Control,
//! Expires, Date, Vary, Set-Cookie, validators, a plugin's directive), how
//! long it may be served stale, the key, the Vary variant a request is
//! stored and found under, and how a 304 would update it.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use kavro_host::cache::policy::{request_eligible, storable_for};
use kavro_host::cache::{Directive, ResponseCache, RoutePolicy};
use libfuzzer_sys::fuzz_target;
use pingora_http::{RequestHeader, ResponseHeader};

/// The headers the cache reads, so that most inputs use them.
const NAMES: &[&str] = &[
    "cache-control",
    "vary",
    "expires",
    "date",
    "age",
    "set-cookie",
    "authorization",
    "accept-encoding",
    "accept-language",
    "cookie",
    "pragma",
    "x-request-id",
    "x-kavro-cache",
    "transfer-encoding",
    "content-length",
    "etag",
    "last-modified",
    "cdn-cache-control",
];

#[derive(Arbitrary, Debug)]
enum Name<'a> {
    Known(u8),
    Other(&'a [u8]),
}

impl Name<'_> {
    fn bytes(&self) -> Bytes {
        match self {
            Name::Known(i) => Bytes::from_static(NAMES[*i as usize % NAMES.len()].as_bytes()),
            Name::Other(b) => Bytes::copy_from_slice(b),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: u8,
    target: &'a [u8],
    req_headers: Vec<(Name<'a>, &'a [u8])>,
    status: u16,
    resp_headers: Vec<(Name<'a>, &'a [u8])>,
    ttl_ms: u32,
    stale_ms: u32,
    keep_ms: u32,
    not_modified: Vec<(Name<'a>, &'a [u8])>,
    statuses: Vec<u16>,
    query: bool,
    origin_headers: bool,
    set_cookie: bool,
    /// None: no directive; `Some(None)`: no-store; else a TTL in ms.
    directive: Option<Option<u64>>,
    host: &'a str,
    https: bool,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let method = ["GET", "HEAD", "POST"][input.method as usize % 3];
    let Ok(mut req) = RequestHeader::build(method, input.target, None) else {
        return;
    };
    for (name, value) in &input.req_headers {
        let _ = req.append_header(name.bytes(), *value);
    }
    let Ok(mut head) = ResponseHeader::build(input.status, None) else {
        return;
    };
    for (name, value) in &input.resp_headers {
        let _ = head.append_header(name.bytes(), *value);
    }

    let eligible = request_eligible(&req);
    if eligible {
        assert!(method != "POST");
        assert!(!req.headers.contains_key(http::header::AUTHORIZATION));
    }

    let policy = RoutePolicy {
        ttl: Duration::from_millis(input.ttl_ms.into()),
        statuses: input.statuses.clone(),
        query: input.query,
        origin_headers: input.origin_headers,
        set_cookie: input.set_cookie,
        stale_while_revalidate: Duration::from_millis(input.stale_ms.into()),
        stale_if_error: Duration::from_millis(input.stale_ms.into()),
        keep: Duration::from_millis(input.keep_ms.into()),
    };
    let directive = input.directive.map(|d| match d {
        None => Directive::NoStore,
        Some(ms) => Directive::Ttl(Duration::from_millis(ms)),
    });
    let lifetime = storable_for(&policy, &head, directive);
    if let Some(l) = lifetime {
        assert!(!l.retained().is_zero());
        assert!(l.retained() >= l.fresh);
        // Nothing is kept past freshness for revalidation without a validator.
        let validator =
            head.headers.contains_key("etag") || head.headers.contains_key("last-modified");
        assert!(validator || l.keep.is_zero());
        assert!(policy.statuses.contains(&head.status.as_u16()));
        assert!(directive != Some(Directive::NoStore));
        assert!(input.set_cookie || !head.headers.contains_key(http::header::SET_COOKIE));
    }

    let key = ResponseCache::key(input.host, &req, input.query, input.https);
    assert!(key.starts_with(input.host));

    // Stored as the pipeline stores a cacheable response, then found again
    // by the same request (its Vary variant included).
    let (Some(lifetime), true) = (lifetime, eligible) else {
        return;
    };
    let cache = ResponseCache::new(1 << 20, 1 << 16);
    cache.store(
        &key,
        &req,
        head,
        Bytes::copy_from_slice(input.body),
        lifetime,
    );
    if let Some(entry) = cache.find(&key, &req) {
        // A 304 never changes the stored body's framing.
        let mut not_modified = ResponseHeader::build(304, None).unwrap();
        for (name, value) in &input.not_modified {
            let _ = not_modified.append_header(name.bytes(), *value);
        }
        let _ = entry.matches(&not_modified);
        let updated = entry.updated_head(&not_modified);
        assert_eq!(
            updated.headers.get("content-length"),
            entry.head.headers.get("content-length")
        );
    }
    if lifetime.fresh >= Duration::from_secs(1) {
        let entry = cache
            .get(&key, &req)
            .expect("a response just stored is found by its request");
        assert_eq!(entry.body.len(), input.body.len());
        assert_eq!(
            entry.head.headers["content-length"].as_bytes(),
            input.body.len().to_string().as_bytes()
        );
        assert!(!entry.head.headers.contains_key("x-request-id"));
    }
});
