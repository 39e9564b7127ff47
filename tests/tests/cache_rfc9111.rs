//! HTTP caching by the rules of RFC 9111 and RFC 5861, end to end on
//! proxied routes with a real origin: a stale entry with a validator
//! (ETag, Last-Modified) revalidated with a conditional request, a
//! matching 304 serving the stored body (`REVALIDATED`), a 200 replacing
//! the entry, a 304 that does not match never merged; `no-cache`,
//! `max-age=0` and an Expires already past stored only with a validator
//! and revalidated on every use; `must-revalidate` and `proxy-revalidate`
//! never served stale; a stale entry without a validator never served when
//! the origin fails; stale-while-revalidate answering at once (`STALE`)
//! with one background refresh for many clients; stale-if-error on a 5xx
//! or a failed connection, from the origin's Cache-Control or the route's
//! settings; unsafe methods invalidating the URI, its Location and its
//! Content-Location; a purge ending a refresh in flight; and the counters
//! on `/diagnostics` and `/metrics`.
//!
//! Lifetimes are short (`max-age=1`) and the waits just past them. An
//! origin's `Date`, and so an entry's age, is in whole seconds: a test that
//! lets an entry go stale first waits for a second to begin
//! ([`start_of_second`]), so that the entry is fresh right after it is
//! stored and stale 1.3 s later, whether the host counts its age from the
//! `Date` or from when it stored it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, eventually, Host};
use reqwest::blocking::Client;
use reqwest::header::HeaderMap;
use reqwest::Method;

/// Routes to `up`, which is never ejected (a failing origin is asked
/// every time): `/c/*` cached with `cache`; `/q/*` cached for 60 s under a
/// key without the query, so that one entry is asked for with different
/// origin parameters; `/*` not cached.
fn cached_proxy(up: &Upstream, cache: &str) -> String {
    format!(
        "[upstreams.app]\ntargets = [\"{addr}\"]\neject = {{ failures = 0 }}\n\n\
         [[routes]]\nname = \"cached\"\npath = \"/c/*\"\nproxy = \"app\"\ncache = {{ {cache} }}\n\n\
         [[routes]]\nname = \"whole-path\"\npath = \"/q/*\"\nproxy = \"app\"\n\
         cache = {{ ttl = \"60s\", query = false }}\n\n\
         [[routes]]\nname = \"plain\"\npath = \"/*\"\nproxy = \"app\"\n",
        addr = up.addr
    )
}

/// What the client got.
#[derive(Debug)]
struct Answer {
    code: u16,
    /// `x-kavro-cache`, or `-` without one.
    cache: String,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// One request with `c`, with another Host header if `host_header` says.
fn request(
    c: &Client,
    host: &Host,
    method: Method,
    path: &str,
    host_header: Option<&str>,
) -> Answer {
    let unsafe_method = method != Method::GET && method != Method::HEAD;
    let mut rq = c.request(method, host.url(path));
    if let Some(h) = host_header {
        rq = rq.header("host", h);
    }
    if unsafe_method {
        rq = rq.body("x");
    }
    let r = rq.send().unwrap_or_else(|e| panic!("{path}: {e}"));
    let code = r.status().as_u16();
    let headers = r.headers().clone();
    let cache = headers
        .get("x-kavro-cache")
        .map_or("-", |v| v.to_str().unwrap())
        .to_string();
    let body = r.text().unwrap();
    Answer {
        code,
        cache,
        headers,
        body,
    }
}

fn get(host: &Host, path: &str) -> Answer {
    request(&client(), host, Method::GET, path, None)
}

/// A request with an unsafe method (and a small body).
fn send(host: &Host, method: Method, path: &str) -> Answer {
    request(&client(), host, method, path, None)
}

/// A GET that must be answered 200 with `x-kavro-cache: cache`: its body.
fn get_as(host: &Host, path: &str, cache: &str) -> String {
    let a = get(host, path);
    assert_eq!(
        (a.code, a.cache.as_str()),
        (200, cache),
        "GET {path}: {a:?}"
    );
    a.body
}

/// A counter under `cache` in `/diagnostics`.
fn counter(host: &Host, name: &str) -> u64 {
    let d = host.admin_json("/diagnostics");
    d["cache"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no cache.{name} in {d}"))
}

/// `kavro_cache_<name>_total` in `/metrics`.
fn metric(host: &Host, name: &str) -> u64 {
    let text = host.metrics();
    let prefix = format!("kavro_cache_{name}_total ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{prefix}<n>` in\n{text}"))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits for the next second of the wall clock to begin, unless one just
/// did: a response fetched right after is 0 s old by its `Date` for most
/// of its `max-age=1`.
fn start_of_second() {
    let into = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    if into > 100 {
        std::thread::sleep(Duration::from_millis(u64::from(1000 - into) + 10));
    }
}

/// Past a `max-age=1` stored after [`start_of_second`], and before the
/// second after it ends.
fn until_stale() {
    std::thread::sleep(Duration::from_millis(1300));
}

/// An HTTP date for a query parameter (`expires=`), its spaces and commas
/// encoded as the origin decodes them.
fn query_date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
        .replace(',', "%2C")
        .replace(' ', "%20")
}

/// RFC 9111 §4.3.1–§4.3.2, §4.3.4: a stale entry with an ETag is
/// revalidated with If-None-Match; the origin's 304 freshens it, and the
/// client gets the stored body with 200.
#[test]
fn rfc9111_4_3_2_etag_revalidation_304_serves_stored_body() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let path = "/c/etag?cc=max-age%3D1&etag=v1";
    start_of_second();
    let first = get(&host, path);
    assert_eq!(
        (first.code, first.cache.as_str()),
        (200, "MISS"),
        "{first:?}"
    );
    assert_eq!(first.header("etag"), Some("\"v1\""));
    assert_eq!(get_as(&host, path, "HIT"), first.body);
    assert_eq!((up.hits(), up.conditionals()), (1, 0));

    until_stale();
    let again = get(&host, path);
    assert_eq!(
        (again.code, again.cache.as_str()),
        (200, "REVALIDATED"),
        "{again:?}"
    );
    assert_eq!(again.body, first.body, "the stored body, not a new one");
    assert_eq!(again.header("etag"), Some("\"v1\""));
    assert_eq!((up.hits(), up.conditionals()), (2, 1));
    assert_eq!(up.last_if_none_match().as_deref(), Some("\"v1\""));

    // The 304's max-age=1 made the entry fresh again.
    assert_eq!(get_as(&host, path, "HIT"), first.body);
    assert_eq!(up.hits(), 2);
    assert_eq!(counter(&host, "revalidated_304"), 1);
    assert_eq!(counter(&host, "revalidated_200"), 0);
}

/// RFC 9111 §4.3.1: with Last-Modified and no ETag, the stale entry is
/// revalidated with If-Modified-Since alone.
#[test]
fn rfc9111_4_3_revalidation_with_last_modified() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let modified = now_secs() - 3600;
    let path = format!("/c/lm?cc=max-age%3D1&lm={modified}");
    let stamp = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(modified));
    start_of_second();
    let first = get(&host, &path);
    assert_eq!(
        (first.code, first.cache.as_str()),
        (200, "MISS"),
        "{first:?}"
    );
    assert_eq!(first.header("last-modified"), Some(stamp.as_str()));
    assert_eq!(first.header("etag"), None);

    until_stale();
    let again = get(&host, &path);
    assert_eq!(
        (again.code, again.cache.as_str()),
        (200, "REVALIDATED"),
        "{again:?}"
    );
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("last-modified"), Some(stamp.as_str()));
    assert_eq!((up.hits(), up.conditionals()), (2, 1));
    assert_eq!(up.last_if_none_match(), None, "no ETag to send");
    assert_eq!(get_as(&host, &path, "HIT"), first.body);
    assert_eq!(up.hits(), 2);
}

/// RFC 9111 §4.3.3: when the conditional request is answered 200, the new
/// response replaces the entry.
#[test]
fn rfc9111_4_3_3_changed_representation_200_replaces_entry() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    // One entry (the key leaves the query out); the origin has v2 later.
    let (stored, changed) = (
        "/q/rep?cc=max-age%3D1&etag=v1",
        "/q/rep?cc=max-age%3D1&etag=v2",
    );
    start_of_second();
    let first = get_as(&host, stored, "MISS");
    assert_eq!(get_as(&host, changed, "HIT"), first, "one entry for both");

    until_stale();
    let now = get(&host, changed);
    assert_eq!((now.code, now.cache.as_str()), (200, "MISS"), "{now:?}");
    assert_ne!(now.body, first);
    assert_eq!(now.header("etag"), Some("\"v2\""));
    assert_eq!(up.conditionals(), 1);
    assert_eq!(
        up.last_if_none_match().as_deref(),
        Some("\"v1\""),
        "asked with the stored ETag"
    );
    // The entry now holds the new response.
    assert_eq!(get_as(&host, stored, "HIT"), now.body);
    assert_eq!(up.hits(), 2);
    assert_eq!(counter(&host, "revalidated_200"), 1);
    assert_eq!(counter(&host, "revalidated_304"), 0);
}

/// RFC 9111 §4.3.4: a 304 whose ETag is not the stored one does not
/// select it; its headers are not merged, the entry is dropped and the
/// client gets a 502.
#[test]
fn rfc9111_4_3_4_mismatched_304_is_not_merged() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    // ETag "v1" on a 200; any conditional request gets a 304 with "v2".
    let path = "/c/mismatch?cc=max-age%3D1&etag=v1&etag304=v2";
    start_of_second();
    let first = get_as(&host, path, "MISS");
    assert_eq!(get_as(&host, path, "HIT"), first);

    until_stale();
    let bad = get(&host, path);
    assert_eq!(bad.code, 502, "{bad:?}");
    assert!(bad.body.contains("304"), "{bad:?}");
    assert_eq!(up.conditionals(), 1);
    assert_eq!(up.last_if_none_match().as_deref(), Some("\"v1\""));

    // The entry is gone: the next request asks without validators.
    let next = get(&host, path);
    assert_eq!((next.code, next.cache.as_str()), (200, "MISS"), "{next:?}");
    assert_ne!(next.body, first);
    assert_eq!(next.header("etag"), Some("\"v1\""));
    assert_eq!(up.conditionals(), 1, "asked unconditionally");
    assert_eq!(get_as(&host, path, "HIT"), next.body);
    assert_eq!(up.hits(), 3);
}

/// RFC 9111 §5.2.2.4 (and §4.2.1 for `max-age=0`): a response that must
/// be validated before each use is stored only with a validator, and
/// every request then reaches the origin as a conditional one.
#[test]
fn rfc9111_5_2_2_4_no_cache_stores_then_revalidates_each_use() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let modified = now_secs() - 3600;
    let validated = [
        ("/c/nc?cc=no-cache&etag=n1".to_string(), "no-cache, ETag"),
        (
            format!("/c/nc-lm?cc=no-cache&lm={modified}"),
            "no-cache, Last-Modified",
        ),
        (
            "/c/ma0?cc=max-age%3D0&etag=z1".to_string(),
            "max-age=0, ETag",
        ),
    ];
    for (path, what) in &validated {
        let before = (up.hits(), up.conditionals());
        let first = get_as(&host, path, "MISS");
        for _ in 0..3 {
            assert_eq!(get_as(&host, path, "REVALIDATED"), first, "{what}");
        }
        assert_eq!(
            (up.hits(), up.conditionals()),
            (before.0 + 4, before.1 + 3),
            "{what}: each use asked the origin, conditionally"
        );
    }
    // Without a validator there is nothing to revalidate with: not stored.
    for path in ["/c/nc-plain?cc=no-cache", "/c/ma0-plain?cc=max-age%3D0"] {
        let first = get_as(&host, path, "MISS");
        let second = get_as(&host, path, "MISS");
        assert_ne!(first, second, "{path}: a new response each time");
    }
    assert_eq!(up.conditionals(), 9);
    assert_eq!(up.hits(), 16);
    assert_eq!(counter(&host, "revalidated_304"), 9);
}

/// RFC 9111 §5.3: an Expires that does not parse, or no later than the
/// response's Date, makes it stale at once: with a validator it is stored
/// and revalidated on every use, without one it is not stored.
#[test]
fn rfc9111_5_3_expires_in_the_past_revalidates_each_use() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let now = now_secs();
    let sent_expired = format!("/c/exp-date?date={now}&expires={}&etag=d1", query_date(now));
    for path in ["/c/exp-invalid?expires=0&etag=e1", sent_expired.as_str()] {
        let first = get_as(&host, path, "MISS");
        assert_eq!(get_as(&host, path, "REVALIDATED"), first, "{path}");
        assert_eq!(get_as(&host, path, "REVALIDATED"), first, "{path}");
    }
    assert_eq!((up.hits(), up.conditionals()), (6, 4));
    // Without a validator: not stored.
    let plain = "/c/exp-plain?expires=0";
    let first = get_as(&host, plain, "MISS");
    assert_ne!(get_as(&host, plain, "MISS"), first);
    assert_eq!((up.hits(), up.conditionals()), (8, 4));
}

/// RFC 9111 §5.2.2.2 and §5.2.2.8: `must-revalidate` and
/// `proxy-revalidate` forbid serving the entry stale, whatever the
/// origin's stale-if-error and the route's stale settings say: when the
/// origin fails, the client gets the failure.
#[test]
fn rfc9111_5_2_2_2_must_revalidate_forbids_stale() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(
            &up,
            "ttl = \"60s\", stale_while_revalidate = \"30s\", stale_if_error = \"60s\"",
        ))
        .start();
    let must = "/c/must?cc=max-age%3D1%2Cmust-revalidate";
    let proxy = "/c/proxy?cc=max-age%3D1%2Cproxy-revalidate%2Cstale-if-error%3D60&etag=p1";
    start_of_second();
    let must_body = get_as(&host, must, "MISS");
    let proxy_body = get_as(&host, proxy, "MISS");
    assert_eq!(get_as(&host, must, "HIT"), must_body);
    assert_eq!(get_as(&host, proxy, "HIT"), proxy_body);
    until_stale();

    // The origin's 500 is passed through, not the stale entry.
    up.set_fail(Some(500));
    for path in [must, proxy] {
        let a = get(&host, path);
        assert_eq!(
            (a.code, a.body.as_str()),
            (500, "failing\n"),
            "{path}: {a:?}"
        );
        assert_ne!(a.cache, "STALE", "{path}");
    }
    up.set_fail(None);

    // A connection closed without an answer: 502.
    up.set_hang_up(true);
    for (path, stored) in [(must, &must_body), (proxy, &proxy_body)] {
        let a = get(&host, path);
        assert_eq!(a.code, 502, "{path}: {a:?}");
        assert_ne!(&a.body, stored, "{path}");
        assert_ne!(a.cache, "STALE", "{path}");
    }
    up.set_hang_up(false);

    // The origin is back, and the entries are within the route's
    // stale-while-revalidate: the clients still wait for the origin.
    let a = get(&host, must);
    assert_eq!((a.code, a.cache.as_str()), (200, "MISS"), "{a:?}");
    assert_ne!(a.body, must_body);
    let a = get(&host, proxy);
    assert_eq!(a.code, 200, "{a:?}");
    assert!(
        a.cache == "REVALIDATED" || a.cache == "MISS",
        "validated with the origin: {a:?}"
    );
    assert_eq!(counter(&host, "stale_while_revalidate"), 0);
    assert_eq!(counter(&host, "stale_if_error"), 0);
}

/// RFC 9111 §4.2.4: a stale response is not served when nothing allows
/// it; without a validator, and with no stale settings on the route, an
/// origin that fails gives the client the failure, never the old body.
#[test]
fn rfc9111_4_2_4_stale_without_validator_not_served_when_origin_fails() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let path = "/c/novalidator?cc=max-age%3D1";
    start_of_second();
    let stored = get_as(&host, path, "MISS");
    assert_eq!(get_as(&host, path, "HIT"), stored);
    until_stale();

    up.set_fail(Some(503));
    let a = get(&host, path);
    assert_eq!((a.code, a.body.as_str()), (503, "failing\n"), "{a:?}");
    up.set_fail(None);

    up.set_hang_up(true);
    let a = get(&host, path);
    assert_eq!(a.code, 502, "{a:?}");
    assert_ne!(a.body, stored);
    up.set_hang_up(false);

    let fresh = get_as(&host, path, "MISS");
    assert_ne!(fresh, stored);
    assert_eq!(up.conditionals(), 0);
    assert_eq!(counter(&host, "stale_if_error"), 0);
}

/// RFC 5861 §3: within stale-while-revalidate, a stale entry is served at
/// once to every client while one background request refreshes it; the
/// refreshed entry is served afterwards.
#[test]
fn rfc5861_3_stale_while_revalidate_one_background_refresh_for_32_clients() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    // max-age=2: the refresh, slowed to 600 ms, is answered within a
    // second that leaves its response fresh for a while.
    let path = "/c/swr?cc=max-age%3D2%2Cstale-while-revalidate%3D30";
    start_of_second();
    let first = get_as(&host, path, "MISS");
    std::thread::sleep(Duration::from_millis(2300));

    // The refresh takes 600 ms: every client below is answered before it.
    up.set_delay(600);
    let n = 32;
    let start = std::sync::Barrier::new(n);
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    let c = client();
                    start.wait();
                    request(&c, &host, Method::GET, path, None)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    up.set_delay(0);
    for a in &answers {
        assert_eq!(
            (a.code, a.cache.as_str(), a.body.as_str()),
            (200, "STALE", first.as_str()),
            "{a:?}"
        );
    }
    eventually("the background refresh at the origin", || {
        (up.hits() >= 2).then_some(())
    });
    let refreshed = eventually("the refreshed entry", || {
        let a = get(&host, path);
        assert_eq!(a.code, 200, "{a:?}");
        match a.cache.as_str() {
            "HIT" => Some(a.body),
            "STALE" => {
                assert_eq!(a.body, first);
                None
            }
            _ => panic!("while the refresh runs: {a:?}"),
        }
    });
    assert_ne!(refreshed, first, "the refresh's response");
    assert_eq!(up.hits(), 2, "one background request for {n} stale answers");
    assert!(counter(&host, "stale_while_revalidate") >= 1);
}

/// RFC 5861 §4: within stale-if-error, a stale entry is served when the
/// origin answers 5xx or cannot be reached, and the origin's answer is
/// used again once it is back.
#[test]
fn rfc5861_4_stale_if_error_on_5xx_and_connection_failure() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let path = "/c/sie?cc=max-age%3D1%2Cstale-if-error%3D60";
    start_of_second();
    let stored = get_as(&host, path, "MISS");
    until_stale();

    for status in [500, 503] {
        up.set_fail(Some(status));
        assert_eq!(get_as(&host, path, "STALE"), stored, "on a {status}");
    }
    up.set_fail(None);
    up.set_hang_up(true);
    assert_eq!(
        get_as(&host, path, "STALE"),
        stored,
        "on a connection closed without an answer"
    );
    up.set_hang_up(false);

    let fresh = get_as(&host, path, "MISS");
    assert_ne!(fresh, stored);
    assert_eq!(get_as(&host, path, "HIT"), fresh);
    assert_eq!(counter(&host, "stale_if_error"), 3);
    assert_eq!(counter(&host, "stale_while_revalidate"), 0);
}

/// The route's `stale_if_error` stands in for an origin that gives none:
/// an origin's 5xx, and then an origin that is gone, get the stale entry.
#[test]
fn route_stale_if_error_serves_when_origin_is_down() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(
            &up,
            "ttl = \"60s\", stale_if_error = \"60s\"",
        ))
        .start();
    let path = "/c/down?cc=max-age%3D1";
    start_of_second();
    let stored = get_as(&host, path, "MISS");
    until_stale();

    up.set_fail(Some(502));
    assert_eq!(get_as(&host, path, "STALE"), stored, "on the origin's 502");
    // Nothing listens any more.
    drop(up);
    assert_eq!(get_as(&host, path, "STALE"), stored, "with the origin gone");
    // Nothing stored, nothing to fall back on.
    let a = get(&host, "/c/never-stored");
    assert_eq!(a.code, 502, "{a:?}");
    assert_eq!(counter(&host, "stale_if_error"), 2);
}

/// RFC 9111 §4.4: a POST, PUT, DELETE or PATCH answered 2xx or 3xx
/// invalidates the entries for its URI and for its Location and
/// Content-Location on the same host; an error answer invalidates nothing.
#[test]
fn rfc9111_4_4_unsafe_methods_invalidate_uri_location_content_location() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let port = host.addr.port();
    // The origin answers it with a relative Location and an absolute
    // Content-Location on this host.
    let target = format!("/c/res?location=/c/loc&clocation=http://127.0.0.1:{port}/c/cloc");
    let stored = [
        target.as_str(),
        "/c/loc",
        "/c/cloc",
        "/c/put",
        "/c/delete",
        "/c/patch",
        "/c/loc303",
        "/c/foreign",
        "/c/stay",
        "/c/stay-loc",
        "/c/kept",
    ];
    for p in stored {
        get_as(&host, p, "MISS");
        get_as(&host, p, "HIT");
    }
    let c = client();
    let other = |cache: &str| {
        let a = request(&c, &host, Method::GET, "/c/foreign", Some("other.example"));
        assert_eq!((a.code, a.cache.as_str()), (200, cache), "{a:?}");
    };
    other("MISS");
    other("HIT");

    // A POST answered 200: its URI, Location and Content-Location.
    let a = send(&host, Method::POST, &target);
    assert_eq!(a.code, 200, "{a:?}");
    for p in [target.as_str(), "/c/loc", "/c/cloc"] {
        get_as(&host, p, "MISS");
    }
    // The other unsafe methods: their URI.
    for (method, p) in [
        (Method::PUT, "/c/put"),
        (Method::DELETE, "/c/delete"),
        (Method::PATCH, "/c/patch"),
    ] {
        let a = send(&host, method, p);
        assert_eq!(a.code, 200, "{p}: {a:?}");
        get_as(&host, p, "MISS");
    }
    // A 303 (3xx) invalidates its Location.
    let a = send(&host, Method::POST, "/c/form?status=303&location=/c/loc303");
    assert_eq!(a.code, 303, "{a:?}");
    get_as(&host, "/c/loc303", "MISS");

    // A Location on another host is left alone, there and here.
    let a = send(
        &host,
        Method::POST,
        "/c/elsewhere?location=http://other.example/c/foreign",
    );
    assert_eq!(a.code, 200, "{a:?}");
    other("HIT");
    get_as(&host, "/c/foreign", "HIT");

    // An error answer invalidates nothing: not its URI, not its Location.
    up.set_fail(Some(500));
    assert_eq!(send(&host, Method::POST, "/c/stay").code, 500);
    up.set_fail(None);
    let a = send(
        &host,
        Method::POST,
        "/c/boom?status=500&location=/c/stay-loc",
    );
    assert_eq!(a.code, 500, "{a:?}");
    get_as(&host, "/c/stay", "HIT");
    get_as(&host, "/c/stay-loc", "HIT");
    get_as(&host, "/c/kept", "HIT");
    assert!(counter(&host, "invalidations") >= 5);
}

/// A purge of a key whose stale entry is being refreshed in the background
/// ends that refresh: its response, arriving after the purge, is not
/// stored.
#[test]
fn purge_ends_a_background_refresh() {
    let up = Upstream::start("a");
    // The route's lifetime and stale-while-revalidate: the key has no query.
    let host = Host::builder()
        .config(&cached_proxy(
            &up,
            "ttl = \"1s\", stale_while_revalidate = \"30s\"",
        ))
        .start();
    let path = "/c/refresh";
    start_of_second();
    let stored = get_as(&host, path, "MISS");
    until_stale();

    up.set_delay(1500);
    assert_eq!(get_as(&host, path, "STALE"), stored);
    eventually("the background refresh at the origin", || {
        (up.hits() == 2).then_some(())
    });
    let r = client()
        .post(host.admin_url("/cache/purge?key=127.0.0.1/c/refresh"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let purged: serde_json::Value = r.json().unwrap();
    assert_eq!(purged["purged"], 1, "{purged}");
    up.set_delay(0);

    // Past the refresh's answer: it was not stored.
    std::thread::sleep(Duration::from_millis(2000));
    let after = get_as(&host, path, "MISS");
    assert_ne!(after, stored);
    assert_eq!(up.hits(), 3);
    assert_eq!(get_as(&host, path, "HIT"), after);
}

/// Each new counter once, the same on `/diagnostics` and `/metrics`; then
/// SIGTERM stops the host cleanly.
#[test]
fn counters_on_diagnostics_and_metrics() {
    let up = Upstream::start("a");
    let mut host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let revalidated = "/c/k304?cc=max-age%3D1&etag=a";
    let (replaced, replacing) = (
        "/q/k200?cc=max-age%3D1&etag=a",
        "/q/k200?cc=max-age%3D1&etag=b",
    );
    let swr = "/c/kswr?cc=max-age%3D1%2Cstale-while-revalidate%3D30";
    let sie = "/c/ksie?cc=max-age%3D1%2Cstale-if-error%3D30";
    let invalidated = "/c/kinv";
    start_of_second();
    for p in [revalidated, replaced, swr, sie, invalidated] {
        get_as(&host, p, "MISS");
    }
    until_stale();

    get_as(&host, revalidated, "REVALIDATED");
    get_as(&host, replacing, "MISS");
    up.set_fail(Some(500));
    get_as(&host, sie, "STALE");
    up.set_fail(None);
    get_as(&host, swr, "STALE");
    assert_eq!(send(&host, Method::POST, invalidated).code, 200);
    // 5 misses, 2 revalidations, the 500, the refresh and the POST.
    eventually("the background refresh at the origin", || {
        (up.hits() >= 10).then_some(())
    });
    // Its answer stored.
    std::thread::sleep(Duration::from_millis(300));

    let d = host.admin_json("/diagnostics");
    let n = |name: &str| -> u64 {
        d["cache"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no cache.{name} in {d}"))
    };
    assert_eq!(n("revalidated_304"), 1, "{d}");
    // The refresh of the stale-while-revalidate entry (no validator) may
    // count as one too.
    assert!((1..=2).contains(&n("revalidated_200")), "{d}");
    assert!(n("stale_while_revalidate") >= 1, "{d}");
    assert_eq!(n("stale_if_error"), 1, "{d}");
    assert!(n("invalidations") >= 1, "{d}");
    for name in [
        "revalidated_304",
        "revalidated_200",
        "stale_while_revalidate",
        "stale_if_error",
        "invalidations",
        "hits",
        "misses",
    ] {
        assert_eq!(metric(&host, name), n(name), "{name}");
    }

    assert!(host.terminate(Duration::from_secs(10)).success());
}

/// RFC 9111 §4.3.2: a client's own conditional request is answered from
/// the store: 304 without a body when its If-None-Match (weak comparison,
/// or `*`) or, without one, its If-Modified-Since matches the entry;
/// the whole entry otherwise. The origin is asked once.
#[test]
fn rfc9111_4_3_2_client_validators_get_304_from_the_store() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let modified = now_secs() - 3600;
    let path = format!("/c/cond?cc=max-age%3D60&etag=v1&lm={modified}");
    let first = get(&host, &path);
    assert_eq!((first.code, first.cache.as_str()), (200, "MISS"));
    let lm = first.header("last-modified").unwrap().to_string();
    let ask = |name: &str, value: &str| {
        let r = client()
            .get(host.url(&path))
            .header(name, value)
            .send()
            .unwrap();
        let code = r.status().as_u16();
        let cache = r.headers()["x-kavro-cache"].to_str().unwrap().to_string();
        let etag = r
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string());
        (code, cache, etag, r.text().unwrap())
    };
    let not_modified = (
        304,
        "HIT".to_string(),
        Some("\"v1\"".to_string()),
        String::new(),
    );
    assert_eq!(ask("if-none-match", "\"v1\""), not_modified);
    assert_eq!(ask("if-none-match", "W/\"v1\""), not_modified);
    assert_eq!(ask("if-none-match", "\"x\", \"v1\""), not_modified);
    assert_eq!(ask("if-none-match", "*"), not_modified);
    assert_eq!(ask("if-modified-since", &lm), not_modified);
    let (code, cache, _, body) = ask("if-none-match", "\"v2\"");
    assert_eq!((code, cache.as_str(), &body), (200, "HIT", &first.body));
    let earlier = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(modified - 60));
    let (code, _, _, body) = ask("if-modified-since", &earlier);
    assert_eq!((code, &body), (200, &first.body));
    assert_eq!(up.hits(), 1);
}
