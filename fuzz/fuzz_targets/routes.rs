//! Route matching: arbitrary method, Host and request target against a
//! route table built once from a config (exact, wildcard and any host;
//! exact, prefix and extension paths; methods; priorities), and against a
//! one-route table whose host and path patterns are themselves arbitrary.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use http::Method;
use kavro_host::config::Config;
use kavro_host::routing::{HostPattern, Match, PathPattern, Route, RouteAction, RouteTable};
use libfuzzer_sys::fuzz_target;
use pingora_http::RequestHeader;

const CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:8080"]

[[routes]]
name = "exact-host"
host = "www.example.com"
path = "/*"
respond = { status = 200, body = "www" }

[[routes]]
name = "wildcard-host"
host = "*.example.com"
path = "/api/*"
methods = ["GET", "HEAD"]
respond = { status = 200, body = "api" }

[[routes]]
name = "about"
path = "/about"
respond = { status = 200, body = "about" }

[[routes]]
name = "php"
path = "/blog/*.php"
respond = { status = 200, body = "php" }

[[routes]]
name = "form"
path = "/form"
methods = ["POST"]
respond = { status = 200, body = "form" }

[[routes]]
name = "low"
path = "/p/*"
priority = 5
respond = { status = 200, body = "low" }

[[routes]]
name = "high"
path = "/p/*"
priority = 1
respond = { status = 200, body = "high" }

[[routes]]
name = "old"
path = "/old/*"
redirect = { to = "/new{path}", status = 301 }

[[routes]]
name = "rest"
path = "/*"
respond = { status = 404, body = "not found" }
"#;

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let config = Config::parse("routes.toml", CONFIG).expect("the fuzz config is valid");
        RouteTable::new(
            config
                .routes
                .iter()
                .map(|r| r.with_action(RouteAction::None))
                .collect(),
        )
    })
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a [u8],
    target: &'a [u8],
    host: Option<&'a [u8]>,
    /// A route of its own: `host` and `path` as a config would give them.
    route_host: &'a str,
    route_path: &'a str,
    route_methods: Vec<&'a str>,
}

fuzz_target!(|input: Input<'_>| {
    // The request as Pingora hands it to the host.
    let Ok(mut req) = RequestHeader::build(input.method, input.target, None) else {
        return;
    };
    if let Some(host) = input.host {
        if req
            .insert_header(http::header::HOST, host.to_vec().as_slice())
            .is_err()
        {
            return;
        }
    }
    let host = kavro_host::fuzzing::request_host(&req);
    assert!(!host.bytes().any(|b| b.is_ascii_uppercase()));
    let path = req.uri.path();

    let table = table();
    match table.find(&host, path, &req.method) {
        Match::Found(r) => {
            assert!(r.methods.is_empty() || r.methods.contains(&req.method));
        }
        // The config ends with a catch-all for every method and path (not
        // for `OPTIONS *`).
        other => assert!(
            !path.starts_with('/'),
            "no route for {host:?} {path:?}: {other:?}"
        ),
    }

    let (Ok(route_host), Ok(route_path)) = (
        HostPattern::parse(input.route_host),
        PathPattern::parse(input.route_path),
    ) else {
        return;
    };
    let methods: Vec<Method> = input
        .route_methods
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let any_host = route_host == HostPattern::Any;
    let one = RouteTable::new(vec![Route {
        name: "fuzzed".into(),
        index: 0,
        host: route_host,
        path: route_path.clone(),
        methods: methods.clone(),
        priority: 0,
        action: RouteAction::None,
        cache: None,
        timeouts: None,
        retries: None,
        max_request_bytes: None,
        compress: true,
        client_cache: None,
        server: None,
    }]);
    let _ = one.find(&host, path, &req.method);
    // The route's own exact path or prefix reaches it, from any host when
    // the route has none.
    if any_host {
        let own = match &route_path {
            PathPattern::Exact(p) | PathPattern::Prefix(p) => p.clone(),
            PathPattern::Extension { prefix, ext } => format!("{prefix}x{ext}"),
        };
        let method = methods.first().cloned().unwrap_or(Method::GET);
        assert!(
            matches!(one.find(&host, &own, &method), Match::Found(_)),
            "{route_path:?} does not match {own:?}"
        );
    }
});
