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
