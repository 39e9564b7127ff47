//! The response cache end to end, on proxied routes (a real upstream) and
//! on a PHP route (a real php-fpm): HIT/MISS/BYPASS, TTLs, origin headers,
//! Vary, hosts, cookies, HEAD, coalescing, purge, and the plugin side
//! (key, bypass, prepare directives, present output, package on hits).

use std::time::Duration;

use kavro_e2e::php::PhpFpm;
use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, Host};
use reqwest::blocking::Response;

/// Routes to `up`: `/c/*` cached with `cache`, `/plain/*` not cached.
fn cached_proxy(up: &Upstream, cache: &str) -> String {
    format!(
        "[upstreams.app]\ntargets = [\"{addr}\"]\n\n\
         [[routes]]\nname = \"cached\"\npath = \"/c/*\"\nproxy = \"app\"\ncache = {{ {cache} }}\n\n\
         [[routes]]\nname = \"cookies\"\npath = \"/cookies/*\"\nproxy = \"app\"\n\
         cache = {{ ttl = \"60s\", set_cookie = true }}\n\n\
         [[routes]]\nname = \"slow\"\npath = \"/slow\"\nproxy = \"app\"\ncache = {{ ttl = \"60s\" }}\n\n\
         [[routes]]\nname = \"plain\"\npath = \"/*\"\nproxy = \"app\"\n",
        addr = up.addr
    )
}

fn status(r: &Response) -> &str {
    r.headers()
        .get("x-kavro-cache")
        .map_or("-", |v| v.to_str().unwrap())
}

fn get(host: &Host, path: &str) -> (String, String) {
    let r = client().get(host.url(path)).send().unwrap();
    assert_eq!(r.status(), 200, "{path}");
    let s = status(&r).to_string();
    (s, r.text().unwrap())
}

#[test]
fn hit_miss_bypass_and_what_is_never_stored() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let c = client();

    let (s1, b1) = get(&host, "/c/page");
    let (s2, b2) = get(&host, "/c/page");
    assert_eq!((s1.as_str(), s2.as_str()), ("MISS", "HIT"));
    assert_eq!(b1, b2);
    assert_eq!(up.hits(), 1);
    let r = c.get(host.url("/c/page")).send().unwrap();
    assert!(r.headers().contains_key("age"));
    // Each response keeps its own request id, never the stored one.
    assert_ne!(
        r.headers()["x-request-id"],
        c.get(host.url("/c/page")).send().unwrap().headers()["x-request-id"]
    );

    // HEAD is answered from the GET entry.
    let r = c.head(host.url("/c/page")).send().unwrap();
    assert_eq!(status(&r), "HIT");
    assert_eq!(r.headers()["content-length"], b1.len().to_string());
    assert_eq!(up.hits(), 1);

    // The query is part of the key.
    assert_eq!(get(&host, "/c/page?v=2").0, "MISS");

    // Not GET/HEAD, or with credentials: BYPASS, and the origin answers.
    let r = c.post(host.url("/c/page")).body("x").send().unwrap();
    assert_eq!(status(&r), "BYPASS");
    let r = c
        .get(host.url("/c/page"))
        .header("authorization", "Bearer t")
        .send()
        .unwrap();
    assert_eq!(status(&r), "BYPASS");
    assert_eq!(up.hits(), 4);

    // Never stored: no-store, private, no-cache, Set-Cookie, Vary: *.
    for q in [
        "cc=no-store",
        "cc=private%2C%20max-age%3D60",
        "cc=no-cache",
        "cookie=s%3D1",
        "vary=*",
    ] {
        let path = format!("/c/never?{q}");
        assert_eq!(get(&host, &path).0, "MISS", "{q}");
        assert_eq!(get(&host, &path).0, "MISS", "{q} was stored");
    }

    // ... unless the route explicitly stores Set-Cookie responses.
    assert_eq!(get(&host, "/cookies/x?cookie=s%3D1").0, "MISS");
    let r = c.get(host.url("/cookies/x?cookie=s%3D1")).send().unwrap();
    assert_eq!(status(&r), "HIT");
    assert_eq!(r.headers()["set-cookie"], "s=1");

    // Routes without a cache table carry no x-kavro-cache.
    let r = c.get(host.url("/other")).send().unwrap();
    assert!(r.headers().get("x-kavro-cache").is_none());

    // The admin API reports it.
    let d = host.admin_json("/diagnostics");
    assert!(d["cache"]["hits"].as_u64().unwrap() >= 3, "{d}");
    assert!(d["cache"]["entries"].as_u64().unwrap() >= 2, "{d}");
}

#[test]
fn ttls_from_the_route_and_the_origin() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"300ms\""))
        .start();
    assert_eq!(get(&host, "/c/short").0, "MISS");
    assert_eq!(get(&host, "/c/short").0, "HIT");
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(get(&host, "/c/short").0, "MISS", "route ttl expired");

    // max-age=1 outlives the route's 300 ms.
    let path = "/c/origin?cc=max-age%3D1";
    assert_eq!(get(&host, path).0, "MISS");
    std::thread::sleep(Duration::from_millis(450));
    assert_eq!(get(&host, path).0, "HIT", "origin max-age applies");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(get(&host, path).0, "MISS", "origin max-age expired");
}

/// RFC 9111 §4.2.3 and §5.1: the age a response arrives with shortens its
/// stay and is part of a hit's `Age`. RFC 9213: `CDN-Cache-Control` speaks
/// to Kavro over `Cache-Control`.
#[test]
fn rfc9111_age_and_rfc9213_cdn_cache_control() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let aged = "/c/aged?cc=max-age%3D100&age=90";
    assert_eq!(get(&host, aged).0, "MISS");
    let r = client().get(host.url(aged)).send().unwrap();
    assert_eq!(status(&r), "HIT");
    let age: u64 = r.headers()["age"].to_str().unwrap().parse().unwrap();
    assert!((90..100).contains(&age), "age {age}");

    let spent = "/c/spent?cc=max-age%3D60&age=60";
    assert_eq!(get(&host, spent).0, "MISS");
    assert_eq!(get(&host, spent).0, "MISS", "arrived stale: not stored");

    let cdn = "/c/cdn?cc=private&cdn=max-age%3D60";
    assert_eq!(get(&host, cdn).0, "MISS");
    assert_eq!(get(&host, cdn).0, "HIT", "the CDN field overrides private");
    let cdn_no = "/c/cdn-no?cc=max-age%3D60&cdn=no-store";
    assert_eq!(get(&host, cdn_no).0, "MISS");
    assert_eq!(get(&host, cdn_no).0, "MISS", "the CDN field says no-store");
}

#[test]
fn vary_and_hosts_keep_entries_apart() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let c = client();
    let lang = |l: &str| {
        let r = c
            .get(host.url("/c/v?vary=accept-language"))
            .header("accept-language", l)
            .send()
            .unwrap();
        let s = status(&r).to_string();
        let body: serde_json::Value = r.json().unwrap();
        (
            s,
            body["headers"]["accept-language"][0]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    assert_eq!(lang("en"), ("MISS".into(), "en".into()));
    assert_eq!(lang("en"), ("HIT".into(), "en".into()));
    assert_eq!(lang("fr"), ("MISS".into(), "fr".into()));
    assert_eq!(lang("fr"), ("HIT".into(), "fr".into()));
    assert_eq!(lang("en"), ("HIT".into(), "en".into()));

    let on_host = |h: &str| {
        let r = c.get(host.url("/c/h")).header("host", h).send().unwrap();
        let s = status(&r).to_string();
        let body: serde_json::Value = r.json().unwrap();
        (s, body["headers"]["host"][0].as_str().unwrap().to_string())
    };
    assert_eq!(on_host("a.example"), ("MISS".into(), "a.example".into()));
    assert_eq!(on_host("b.example"), ("MISS".into(), "b.example".into()));
    assert_eq!(on_host("a.example"), ("HIT".into(), "a.example".into()));
}

#[test]
fn concurrent_misses_make_one_upstream_request() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    let url = host.url("/slow?ms=400");
    let statuses: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let r = client().get(&url).send().unwrap();
                    assert_eq!(r.status(), 200);
                    status(&r).to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(up.hits(), 1, "statuses: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| *s == "MISS").count(), 1);
    assert_eq!(statuses.iter().filter(|s| *s == "HIT").count(), 7);
}

#[test]
fn purge_by_key_and_prefix_through_the_admin_api() {
    let up = Upstream::start("a");
    let host = Host::builder()
        .config(&cached_proxy(&up, "ttl = \"60s\""))
        .start();
    for p in ["/c/a", "/c/b/1", "/c/b/2"] {
        assert_eq!(get(&host, p).0, "MISS");
        assert_eq!(get(&host, p).0, "HIT");
    }
    let purge = |q: &str| -> serde_json::Value {
        client()
            .post(host.admin_url(&format!("/cache/purge?{q}")))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(purge("key=127.0.0.1/c/a")["purged"], 1);
    assert_eq!(get(&host, "/c/a").0, "MISS");
    assert_eq!(get(&host, "/c/b/1").0, "HIT");
    assert_eq!(purge("prefix=127.0.0.1/c/b/")["purged"], 2);
    assert_eq!(get(&host, "/c/b/1").0, "MISS");
    assert_eq!(get(&host, "/c/b/2").0, "MISS");
    let bad = client()
        .post(host.admin_url("/cache/purge"))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// A PHP route with a route-scoped cache, as a site would set one up.
#[test]
fn php_route_cache() {
    let fpm = PhpFpm::start(2);
    let config = format!(
        "[[routes]]\nname = \"php\"\npath = \"/*.php\"\n\
         [routes.fastcgi]\naddress = \"{addr}\"\nroot = \"{root}\"\n\
         [routes.cache]\nttl = \"400ms\"\nstatuses = [200]\n",
        addr = fpm.address(),
        root = fpm.root().display(),
    );
    let host = Host::builder().config(&config).start();
    let c = client();
    let (s, b) = get(&host, "/counter.php");
    assert_eq!((s.as_str(), b.as_str()), ("MISS", "run 1 lang=-\n"));
    let (s, b) = get(&host, "/counter.php");
    assert_eq!((s.as_str(), b.as_str()), ("HIT", "run 1 lang=-\n"));
    assert_eq!(fpm.hits(), 1);
    std::thread::sleep(Duration::from_millis(550));
    let (s, b) = get(&host, "/counter.php");
    assert_eq!((s.as_str(), b.as_str()), ("MISS", "run 2 lang=-\n"));

    // PHP's 404 is outside `statuses`; a Set-Cookie page is never stored.
    for path in ["/notfound.php", "/counter.php?cookie=1"] {
        let r = c.get(host.url(path)).send().unwrap();
        assert_eq!(status(&r), "MISS", "{path}");
        let r = c.get(host.url(path)).send().unwrap();
        assert_eq!(status(&r), "MISS", "{path} was stored");
    }
    // A form POST passes by.
    let r = c
        .post(host.url("/form.php"))
        .form(&[("a", "1")])
        .send()
        .unwrap();
    assert_eq!(status(&r), "BYPASS");

    // Vary from PHP.
    let lang = |l: &str| {
        let r = c
            .get(host.url("/counter.php?vary=Accept-Language"))
            .header("accept-language", l)
            .send()
            .unwrap();
        (status(&r).to_string(), r.text().unwrap())
    };
    let (s, en) = lang("en");
    assert_eq!(s, "MISS");
    assert!(en.ends_with("lang=en\n"), "{en}");
    assert_eq!(lang("en"), ("HIT".to_string(), en));
    let (s, fr) = lang("fr");
    assert_eq!(s, "MISS");
    assert!(fr.ends_with("lang=fr\n"), "{fr}");
}

/// Plugins decide: a session cookie bypasses, a header sets the key, a
/// prepare reply carries its directive, present's output is what is
/// stored, and package runs on every hit.
#[test]
fn plugins_drive_the_cache() {
    let up = Upstream::start("a");
    let config = format!(
        "{}\n[[routes]]\nname = \"generated\"\npath = \"/generated/*\"\ncache = {{ ttl = \"1s\" }}\n\n\
         [[plugins]]\nname = \"cacher\"\ncapabilities = [\"kv\", \"cache\"]\n",
        cached_proxy(&up, "ttl = \"60s\"")
    );
    let host = Host::builder()
        .plugin("cacher", "cacher")
        .config(&config)
        .start();
    let c = client();
    let fetch = |path: &str, headers: &[(&str, &str)]| {
        let mut rq = c.get(host.url(path));
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        let r = rq.send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let packaged: i64 = r.headers()["x-packaged"].to_str().unwrap().parse().unwrap();
        (status(&r).to_string(), packaged, r.text().unwrap())
    };

    // Present ran once, on the miss; its output is what the hit serves,
    // while package ran on both.
    let (s1, k1, b1) = fetch("/c/p", &[]);
    let (s2, k2, b2) = fetch("/c/p", &[]);
    assert_eq!((s1.as_str(), s2.as_str()), ("MISS", "HIT"));
    assert!(b1.ends_with("presented #1"), "{b1}");
    assert_eq!(b1, b2);
    assert_eq!(k2, k1 + 1);

    // A session cookie bypasses the cache.
    let (s, _, _) = fetch("/c/p", &[("cookie", "session=abc")]);
    assert_eq!(s, "BYPASS");

    // A key chosen in prime: two paths share one entry.
    assert_eq!(fetch("/c/k1", &[("x-cache-key", "shared")]).0, "MISS");
    let (s, _, b) = fetch("/c/k2", &[("x-cache-key", "shared")]);
    assert_eq!(s, "HIT");
    assert!(
        b.contains("/c/k1"),
        "served the entry stored for /c/k1: {b}"
    );

    // Prepare's directive: a 60 s ttl outlives the route's 1 s; no-store is never stored.
    let (s, _, first) = fetch("/generated/ttl", &[]);
    assert_eq!(s, "MISS");
    std::thread::sleep(Duration::from_millis(1200));
    let (s, _, again) = fetch("/generated/ttl", &[]);
    assert_eq!((s.as_str(), again.as_str()), ("HIT", first.as_str()));
    assert_eq!(fetch("/generated/no-store", &[]).0, "MISS");
    assert_eq!(fetch("/generated/no-store", &[]).0, "MISS");

    // Purge through the plugin capability.
    let r = c.get(host.url("/purge/127.0.0.1/c/")).send().unwrap();
    let purged = r.text().unwrap();
    assert!(purged.starts_with("purged 1 "), "{purged}");
    assert_eq!(fetch("/c/p", &[]).0, "MISS");
}

#[test]
fn cache_capability_is_denied_unless_granted() {
    let up = Upstream::start("a");
    let config = format!(
        "{}\n[[plugins]]\nname = \"cacher\"\ncapabilities = [\"kv\"]\n",
        cached_proxy(&up, "ttl = \"60s\"")
    );
    let b = Host::builder().plugin("cacher", "cacher").config(&config);
    let (ok, out) = b.validate();
    assert!(!ok);
    assert!(out.contains("\"cache\""), "{out}");
}

/// RFC 5861 §4 on a route Kavro answers itself: PHP's 500 is answered by
/// the stale entry, and once PHP recovers the entry is fetched again.
#[test]
fn rfc5861_4_stale_if_error_on_a_fastcgi_route() {
    let fpm = PhpFpm::start(2);
    let flag = fpm.root().join("failing");
    std::fs::write(
        fpm.root().join("flaky.php"),
        format!(
            "<?php\nheader('Cache-Control: max-age=1, stale-if-error=60');\n\
             if (file_exists('{}')) {{ http_response_code(500); echo \"failing\\n\"; exit; }}\n\
             echo 'ok ', hrtime(true), \"\\n\";\n",
            flag.display()
        ),
    )
    .unwrap();
    let config = format!(
        "[[routes]]\nname = \"php\"\npath = \"/*.php\"\n\
         [routes.fastcgi]\naddress = \"{addr}\"\nroot = \"{root}\"\n\
         [routes.cache]\nttl = \"60s\"\n",
        addr = fpm.address(),
        root = fpm.root().display(),
    );
    let host = Host::builder().config(&config).start();
    let (s, first) = get(&host, "/flaky.php");
    assert_eq!(s, "MISS");
    assert!(first.starts_with("ok "), "{first}");
    assert_eq!(get(&host, "/flaky.php"), ("HIT".to_string(), first.clone()));
    std::fs::write(&flag, "").unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(
        get(&host, "/flaky.php"),
        ("STALE".to_string(), first.clone())
    );
    std::fs::remove_file(&flag).unwrap();
    let (s, again) = get(&host, "/flaky.php");
    assert_eq!(s, "MISS");
    assert!(again.starts_with("ok ") && again != first, "{again}");
    let d = host.admin_json("/diagnostics");
    assert_eq!(d["cache"]["stale_if_error"], 1, "{d}");
}
