//! Timeouts towards an upstream inherit from `[timeouts]` to the upstream
//! to the route: a route's own read timeout cuts a slow answer short where
//! another route on the same upstream waits for it, and `total_ms` bounds
//! a request's whole time with the upstream.

use std::time::{Duration, Instant};

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, Host};

#[test]
fn a_route_overrides_the_upstream_and_the_total_bounds_the_request() {
    let app = Upstream::start("app");
    app.set_delay(600);
    let config = format!(
        "[timeouts]\nread_ms = 5000\n\n\
         [upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"hurried\"\npath = \"/hurried/*\"\nproxy = \"app\"\ntimeouts = {{ read_ms = 200 }}\n\n\
         [[routes]]\nname = \"bounded\"\npath = \"/bounded/*\"\nproxy = \"app\"\ntimeouts = {{ total_ms = 300 }}\n\n\
         [[routes]]\nname = \"patient\"\npath = \"/*\"\nproxy = \"app\"\n",
        app.addr
    );
    let host = Host::builder().config(&config).start();
    let c = client();
    let timed = |path: &str| {
        let t = Instant::now();
        let status = c.get(host.url(path)).send().unwrap().status().as_u16();
        (status, t.elapsed())
    };
    // The upstream's read timeout comes from [timeouts]: 5 s is enough.
    let (status, _) = timed("/");
    assert_eq!(status, 200);
    // The route's own read timeout: 200 ms is not.
    let (status, took) = timed("/hurried/");
    assert_eq!(status, 504);
    assert!(
        took < Duration::from_millis(590),
        "cut short at the route's timeout: {took:?}"
    );
    // The total bounds the request's time with the upstream.
    let (status, took) = timed("/bounded/");
    assert_eq!(status, 504);
    assert!(took < Duration::from_millis(590), "{took:?}");
}

#[test]
fn zero_timeouts_are_refused_with_the_field() {
    let host = Host::builder().config(
        "[timeouts]\nconnect_ms = 0\n[upstreams.app]\ntargets = [\"127.0.0.1:1\"]\n\
         [[routes]]\nproxy = \"app\"\ntimeouts = { read_ms = 0 }\n",
    );
    let (ok, out) = host.validate();
    assert!(!ok, "{out}");
    assert!(out.contains("timeouts.connect_ms"), "{out}");
    assert!(out.contains("routes[0].timeouts.read_ms"), "{out}");
    assert!(out.contains("inherit"), "{out}");
}
