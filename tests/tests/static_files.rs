//! Static files end to end: traversal attempts, content types, 304, ranges.

use kavro_e2e::Host;

fn site() -> Host {
    let b = Host::builder();
    let root = b.dir.path().join("site");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("docs/a.txt"), "0123456789").unwrap();
    std::fs::write(b.dir.path().join("secret.txt"), "top secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(b.dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
    let config = format!(
        "[[routes]]\npath = \"/*\"\nstatic = {{ root = \"{}\" }}\n",
        root.display()
    );
    b.config(&config).start()
}

#[test]
fn traversal_never_escapes_the_root() {
    let host = site();
    for attempt in [
        "GET /../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /docs/../../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /%2e%2e/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /%2E%2E%2Fsecret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /docs/..%2f..%2fsecret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /..%5csecret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /link.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let resp = host.raw(attempt.as_bytes());
        assert!(!resp.contains("top secret"), "{attempt:?} leaked:\n{resp}");
        assert!(
            resp.starts_with("HTTP/1.1 404") || resp.starts_with("HTTP/1.1 400"),
            "{attempt:?}:\n{resp}"
        );
    }
}

#[test]
fn content_types_conditional_and_ranges() {
    let host = site();
    let c = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(host.url("/")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let modified = r.headers()["last-modified"].to_str().unwrap().to_string();
    assert_eq!(r.text().unwrap(), "<h1>home</h1>");

    let r = c
        .get(host.url("/"))
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c
        .get(host.url("/"))
        .header("if-modified-since", &modified)
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);

    let r = c
        .get(host.url("/docs/a.txt"))
        .header("range", "bytes=2-5")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-5/10");
    assert_eq!(r.text().unwrap(), "2345");
    let r = c
        .get(host.url("/docs/a.txt"))
        .header("range", "bytes=-3")
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "789");
    let r = c
        .get(host.url("/docs/a.txt"))
        .header("range", "bytes=50-")
        .send()
        .unwrap();
    assert_eq!(r.status(), 416);

    let r = c.get(host.url("/docs")).send().unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "/docs/");
    let r = c.head(host.url("/docs/a.txt")).send().unwrap();
    assert_eq!(r.headers()["content-length"], "10");
    assert_eq!(
        c.post(host.url("/docs/a.txt")).send().unwrap().status(),
        405
    );
}

/// A site whose `app.js` has `.br` and `.gz` siblings (their bytes stand
/// in for compressed ones: Kavro serves them as they are), and whose
/// `lib.js.gz` is a symlink leading out of the root.
fn precompressed_site() -> Host {
    let b = Host::builder();
    let root = b.dir.path().join("site");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("app.js"), "console.log('identity');").unwrap();
    std::fs::write(root.join("app.js.br"), "BROTLI-BYTES").unwrap();
    std::fs::write(root.join("app.js.gz"), "GZIP-BYTES").unwrap();
    std::fs::write(root.join("lib.js"), "lib").unwrap();
    std::fs::write(b.dir.path().join("outside.gz"), "top secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(b.dir.path().join("outside.gz"), root.join("lib.js.gz")).unwrap();
    let config = format!(
        "[[routes]]\npath = \"/*\"\nstatic = {{ root = \"{}\", precompressed = true }}\n",
        root.display()
    );
    b.config(&config).start()
}

fn get(host: &Host, method: &str, path: &str, headers: &str) -> String {
    host.raw(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

#[test]
fn precompressed_siblings_by_accept_encoding() {
    let host = precompressed_site();
    let head_of = |r: &str| r.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    for (accept, body, coding) in [
        (
            "accept-encoding: gzip, deflate, br\r\n",
            "BROTLI-BYTES",
            Some("br"),
        ),
        ("accept-encoding: gzip\r\n", "GZIP-BYTES", Some("gzip")),
        (
            "accept-encoding: br;q=0, gzip;q=0.5\r\n",
            "GZIP-BYTES",
            Some("gzip"),
        ),
        // zstd accepted, but there is no .zst: the next best.
        (
            "accept-encoding: zstd, gzip;q=0.9\r\n",
            "GZIP-BYTES",
            Some("gzip"),
        ),
        ("", "console.log('identity');", None),
        (
            "accept-encoding: identity\r\n",
            "console.log('identity');",
            None,
        ),
        // Garbage and absurd q-values: identity.
        (
            "accept-encoding: gzip;q=5\r\n",
            "console.log('identity');",
            None,
        ),
        (
            "accept-encoding: ;;;==\r\n",
            "console.log('identity');",
            None,
        ),
    ] {
        let r = get(&host, "GET", "/app.js", accept);
        assert!(r.starts_with("HTTP/1.1 200"), "{accept:?}:\n{r}");
        assert!(r.ends_with(body), "{accept:?}:\n{r}");
        let head = head_of(&r);
        assert!(
            head.contains("content-type: text/javascript"),
            "{accept:?}:\n{r}"
        );
        match coding {
            Some(c) => {
                assert!(head.contains(&format!("content-encoding: {c}\r\n")), "{r}");
                assert!(head.contains("vary: accept-encoding"), "{r}");
                assert!(!head.contains("accept-ranges"), "{r}");
                assert!(
                    head.contains(&format!("content-length: {}\r\n", body.len())),
                    "{r}"
                );
            }
            None => {
                assert!(!head.contains("content-encoding"), "{accept:?}:\n{r}");
                assert!(head.contains("accept-ranges: bytes"), "{r}");
                // The file itself varies by Accept-Encoding too.
                assert!(head.contains("vary: accept-encoding"), "{r}");
            }
        }
    }
    // A range is of the file itself.
    let r = get(
        &host,
        "GET",
        "/app.js",
        "accept-encoding: br\r\nrange: bytes=0-6\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 206"), "{r}");
    assert!(r.ends_with("console"), "{r}");
    assert!(!head_of(&r).contains("content-encoding"), "{r}");
    // HEAD: the encoded representation's head, no body.
    let r = get(&host, "HEAD", "/app.js", "accept-encoding: br\r\n");
    assert!(head_of(&r).contains("content-encoding: br"), "{r}");
    assert!(!r.contains("BROTLI-BYTES"), "{r}");
    // The encoded representation has its own ETag, and revalidates.
    let r = get(&host, "GET", "/app.js", "accept-encoding: br\r\n");
    let etag = head_of(&r)
        .lines()
        .find_map(|l| l.strip_prefix("etag: ").map(str::to_string))
        .unwrap();
    let identity = get(&host, "GET", "/app.js", "");
    assert!(!head_of(&identity).contains(&etag), "{identity}");
    let r = get(
        &host,
        "GET",
        "/app.js",
        &format!("accept-encoding: br\r\nif-none-match: {etag}\r\n"),
    );
    assert!(r.starts_with("HTTP/1.1 304"), "{r}");
    // A cache merging a 304's headers must not relabel its body.
    assert!(!head_of(&r).contains("content-encoding"), "{r}");
    // A sibling that leads out of the root is not served.
    let r = get(&host, "GET", "/lib.js", "accept-encoding: gzip\r\n");
    assert!(r.ends_with("lib"), "{r}");
    assert!(!r.contains("top secret"), "{r}");
}

#[test]
fn siblings_are_ignored_unless_the_route_asks_for_them() {
    let b = Host::builder();
    let root = b.dir.path().join("site");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("app.js"), "identity").unwrap();
    std::fs::write(root.join("app.js.br"), "BROTLI-BYTES").unwrap();
    let config = format!(
        "[[routes]]\npath = \"/*\"\nstatic = {{ root = \"{}\" }}\n",
        root.display()
    );
    let host = b.config(&config).start();
    let r = get(&host, "GET", "/app.js", "accept-encoding: br\r\n");
    assert!(r.ends_with("\r\n\r\nidentity"), "{r}");
    assert!(!r.to_ascii_lowercase().contains("vary"), "{r}");
}

/// A route's client cache preference: the Cache-Control its 2xx and 3xx
/// answers get when they carry none (304s too), never on errors; the
/// named preferences and a number of seconds; a bad one is refused.
#[test]
fn client_cache_preferences_set_cache_control_towards_clients() {
    let b = Host::builder();
    let root = b.dir.path().join("site");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("app.js"), "go()").unwrap();
    let config = format!(
        "[[routes]]\npath = \"/assets/*\"\nstatic = {{ root = \"{0}\", strip_prefix = \"/assets\" }}\nclient_cache = \"full\"\n\n\
         [[routes]]\npath = \"/short/*\"\nstatic = {{ root = \"{0}\", strip_prefix = \"/short\" }}\nclient_cache = 60\n\n\
         [[routes]]\npath = \"/own\"\nrespond = {{ body = \"own\", headers = {{ cache-control = \"private\" }} }}\nclient_cache = \"none\"\n\n\
         [[routes]]\npath = \"/*\"\nstatic = {{ root = \"{0}\" }}\n",
        root.display()
    );
    let mut host = b.config(&config).start();
    let c = kavro_e2e::client();
    let cc = |r: &reqwest::blocking::Response| {
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let r = c.get(host.url("/assets/app.js")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(cc(&r).as_deref(), Some("public, max-age=604800, immutable"));
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = c
        .get(host.url("/assets/app.js"))
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(cc(&r).as_deref(), Some("public, max-age=604800, immutable"));
    let r = c.get(host.url("/assets/missing.js")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(cc(&r), None);
    let r = c.get(host.url("/short/app.js")).send().unwrap();
    assert_eq!(cc(&r).as_deref(), Some("max-age=60"));
    // The response's own header wins.
    let r = c.get(host.url("/own")).send().unwrap();
    assert_eq!(cc(&r).as_deref(), Some("private"));
    let r = c.get(host.url("/app.js")).send().unwrap();
    assert_eq!(cc(&r), None);
    assert!(host.terminate(std::time::Duration::from_secs(10)).success());

    let bad = Host::builder().config(
        "[[routes]]\npath = \"/*\"\nrespond = { body = \"x\" }\nclient_cache = \"forever\"\n",
    );
    let (ok, out) = bad.validate();
    assert!(!ok, "{out}");
    assert!(
        out.contains("client_cache") && out.contains("\"changing\""),
        "{out}"
    );
}
