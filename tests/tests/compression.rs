//! Compression end to end: static files compressed once per coding,
//! proxied bodies compressed as they stream, cache hits in every coding
//! from one stored body, and what is never compressed.

use std::io::Read;
use std::time::Duration;

use kavro_e2e::upstream::Upstream;
use kavro_e2e::{client, Host};

const STOP_WITHIN: Duration = Duration::from_secs(5);

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn coding(&self) -> Option<&str> {
        self.header("content-encoding")
    }

    /// The body decoded from its coding.
    fn decoded(&self) -> Vec<u8> {
        let data = self.body.as_slice();
        let mut out = Vec::new();
        match self.coding() {
            None => out.extend_from_slice(data),
            Some("gzip") => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .expect("gzip decodes");
            }
            Some("br") => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .expect("brotli decodes");
            }
            Some("zstd") => {
                zstd::stream::read::Decoder::new(data)
                    .unwrap()
                    .read_to_end(&mut out)
                    .expect("zstd decodes");
            }
            Some(other) => panic!("unexpected coding {other}"),
        }
        out
    }

    fn varies(&self) -> bool {
        self.headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap_or("").contains("accept-encoding"))
    }
}

fn get(c: &reqwest::blocking::Client, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = c.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().expect("an answer");
    Got {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.bytes().expect("a body").to_vec(),
    }
}

fn page(n: usize) -> String {
    let mut s = String::from("<!doctype html><title>page</title>\n");
    for i in 0..n {
        s.push_str(&format!(
            "<p class=\"row\">row {i} of the page, {}</p>\n",
            i % 17
        ));
    }
    s
}

/// Accept-Encoding, and the coding it must get for a compressible body.
const NEGOTIATIONS: &[(&str, Option<&str>)] = &[
    ("br", Some("br")),
    ("gzip", Some("gzip")),
    ("zstd", Some("zstd")),
    ("gzip, deflate, br, zstd", Some("br")),
    ("gzip, br;q=0.5", Some("gzip")),
    ("identity;q=0, gzip", Some("gzip")),
    ("*", Some("br")),
    ("*;q=0.5, zstd", Some("zstd")),
    ("*;q=0", None),
    ("identity", None),
    ("gzip;q=5", None),
    (";;;==", None),
];

#[test]
fn static_files_are_compressed_once_per_coding_and_each_decodes() {
    let b = Host::builder();
    let root = b.dir.path().join("site");
    std::fs::create_dir_all(&root).unwrap();
    let html = page(3000);
    std::fs::write(root.join("page.html"), &html).unwrap();
    std::fs::write(root.join("small.txt"), "tiny").unwrap();
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("photo.png"), &noise).unwrap();
    let config = format!(
        "[[routes]]\nname = \"raw\"\npath = \"/raw/*\"\nstatic = {{ root = \"{0}\", strip_prefix = \"/raw\" }}\ncompress = false\n\n\
         [[routes]]\npath = \"/*\"\nstatic = {{ root = \"{0}\" }}\n",
        root.display()
    );
    let mut host = b.config(&config).start();
    let c = client();
    let url = host.url("/page.html");
    for round in 0..2 {
        for (accept, want) in NEGOTIATIONS {
            let r = get(&c, &url, &[("accept-encoding", accept)]);
            assert_eq!(r.status, 200, "{accept}");
            assert_eq!(r.coding(), *want, "{accept} (round {round})");
            assert!(r.varies(), "{accept}: {:?}", r.headers);
            assert_eq!(r.decoded(), html.as_bytes(), "{accept}");
            let etag = r.header("etag").unwrap();
            match want {
                Some(_) => {
                    assert!(etag.starts_with("W/"), "{etag}");
                    // Framed by its length: the connection stays open.
                    let len = r.body.len().to_string();
                    assert_eq!(r.header("content-length"), Some(len.as_str()));
                    assert!(r.body.len() < html.len() / 4, "{accept}: {}", r.body.len());
                    assert!(r.header("accept-ranges").is_none());
                }
                None => {
                    assert!(!etag.starts_with("W/"), "{etag}");
                    assert_eq!(
                        r.header("content-length"),
                        Some(html.len().to_string().as_str())
                    );
                }
            }
        }
    }
    let figures = host.admin_json("/diagnostics")["compression"].clone();
    // Once per coding: every later response of the file was a kept form.
    assert_eq!(figures["compressed_whole"], 3, "{figures}");
    assert!(figures["kept_hits"].as_u64().unwrap() >= 10, "{figures}");

    // A weak tag still revalidates.
    let r = get(&c, &url, &[("accept-encoding", "gzip")]);
    let etag = r.header("etag").unwrap().to_string();
    let r = get(
        &c,
        &url,
        &[("accept-encoding", "gzip"), ("if-none-match", &etag)],
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    // The 304 says what the compressed 200 said.
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert!(r.varies());

    // A range is of the file itself.
    let r = get(
        &c,
        &url,
        &[("accept-encoding", "br"), ("range", "bytes=0-14")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.coding(), None);
    assert_eq!(r.body, &html.as_bytes()[..15]);

    // HEAD: the head of the compressed form, no body.
    let r = c.head(&url).header("accept-encoding", "br").send().unwrap();
    assert_eq!(r.headers()["content-encoding"], "br");
    assert!(r.headers().get("content-length").is_none_or(|l| l != "0"));

    // What is never compressed: a short body, a type not listed, a route
    // that says no.
    for (path, what) in [
        ("/small.txt", "short"),
        ("/photo.png", "an image"),
        ("/raw/page.html", "compress = false"),
    ] {
        let r = get(&c, &host.url(path), &[("accept-encoding", "gzip, br")]);
        assert_eq!(r.status, 200, "{what}");
        assert_eq!(r.coding(), None, "{what}");
    }

    // A changed file is a new body: never a kept form of the old one.
    let changed = page(2000).replace("row", "line");
    std::fs::write(root.join("page.html"), &changed).unwrap();
    let r = get(&c, &url, &[("accept-encoding", "br")]);
    assert_eq!(r.coding(), Some("br"));
    assert_eq!(r.decoded(), changed.as_bytes());

    let status = host.terminate(STOP_WITHIN);
    assert!(status.success(), "exit {status}\n{}", host.log());
}

fn proxy_config(up: &Upstream, cache: bool) -> String {
    let cache = if cache {
        "cache = { ttl = \"60s\" }\n"
    } else {
        ""
    };
    format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\n[[routes]]\npath = \"/*\"\nproxy = \"app\"\n{cache}",
        up.addr
    )
}

fn pad_of(body: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(body).expect("the echo");
    v["pad"].as_str().map_or(0, str::len)
}

#[test]
fn proxied_bodies_stream_compressed_under_32_connections_then_sigterm() {
    let up = Upstream::start("app");
    let mut host = Host::builder().config(&proxy_config(&up, false)).start();
    let url = host.url("/page?pad=5000");
    let want = "<p>padding</p>".len() * 5000;
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..32)
            .map(|i| {
                let url = &url;
                s.spawn(move || {
                    let c = client();
                    let mut failed = Vec::new();
                    for j in 0..4 {
                        let (accept, coding) = NEGOTIATIONS[(i + j) % NEGOTIATIONS.len()];
                        let r = get(&c, url, &[("accept-encoding", accept)]);
                        if r.status != 200 || r.coding() != coding || !r.varies() {
                            failed.push(format!("{accept}: {} {:?}", r.status, r.headers));
                        } else if pad_of(&r.decoded()) != want {
                            failed.push(format!("{accept}: the body decoded wrong"));
                        }
                    }
                    failed
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client thread"))
            .collect()
    });
    assert!(failures.is_empty(), "{failures:?}");

    let c = client();
    // Already encoded, no-transform, or not a listed type: as it came.
    for (query, what) in [
        ("pad=500&ce=gzip", "already encoded"),
        ("pad=500&cc=no-transform", "no-transform"),
        ("pad=500&ct=image%2Fpng", "an image"),
    ] {
        let r = get(
            &c,
            &host.url(&format!("/x?{query}")),
            &[("accept-encoding", "br, gzip")],
        );
        assert_eq!(r.status, 200, "{what}");
        let coding = r.coding();
        assert!(
            coding.is_none() || coding == Some("gzip") && what == "already encoded",
            "{what}: {coding:?}"
        );
        assert!(pad_of(&r.body) > 0, "{what}: the body passed as it was");
    }
    let figures = host.admin_json("/diagnostics")["compression"].clone();
    assert_eq!(figures["errors"], 0, "{figures}");
    let status = host.terminate(STOP_WITHIN);
    assert!(status.success(), "exit {status}\n{}", host.log());
}

#[test]
fn cache_hits_serve_every_coding_from_one_stored_body() {
    let up = Upstream::start("app");
    let mut host = Host::builder().config(&proxy_config(&up, true)).start();
    let c = client();
    let url = host.url("/cached?pad=3000");
    let want = "<p>padding</p>".len() * 3000;
    let first = get(&c, &url, &[("accept-encoding", "br")]);
    assert_eq!(first.header("x-kavro-cache"), Some("MISS"));
    assert_eq!(first.coding(), Some("br"));
    assert_eq!(pad_of(&first.decoded()), want);
    let stored = first.decoded();
    for accept in ["br", "gzip", "zstd", "br", "gzip", "identity"] {
        let r = get(&c, &url, &[("accept-encoding", accept)]);
        assert_eq!(r.header("x-kavro-cache"), Some("HIT"), "{accept}");
        let want_coding = (accept != "identity").then_some(accept);
        assert_eq!(r.coding(), want_coding, "{accept}");
        assert!(r.varies(), "{accept}");
        // The same stored body, in each coding.
        assert_eq!(r.decoded(), stored, "{accept}");
    }
    assert_eq!(up.hits(), 1, "one fetch for every coding");

    // A stale entry the origin confirms with a bodiless 304 goes out
    // compressed, with its length.
    let url = host.url("/reval?pad=2000&etag=v1&cc=max-age%3D0");
    let first = get(&c, &url, &[("accept-encoding", "gzip")]);
    assert_eq!(first.coding(), Some("gzip"));
    for accept in ["gzip", "br"] {
        let r = get(&c, &url, &[("accept-encoding", accept)]);
        assert_eq!(r.header("x-kavro-cache"), Some("REVALIDATED"), "{accept}");
        assert_eq!(r.coding(), Some(accept));
        let len = r.body.len().to_string();
        assert_eq!(r.header("content-length"), Some(len.as_str()));
        assert_eq!(pad_of(&r.decoded()), "<p>padding</p>".len() * 2000);
    }
    let figures = host.admin_json("/diagnostics")["compression"].clone();
    // br, gzip and zstd of the stored body, each compressed once: the
    // second br and gzip are kept forms.
    assert!(figures["kept_hits"].as_u64().unwrap() >= 2, "{figures}");
    let status = host.terminate(STOP_WITHIN);
    assert!(status.success(), "exit {status}\n{}", host.log());
}

#[test]
fn compression_can_be_turned_off_and_bad_settings_are_refused() {
    let body = "kavro ".repeat(200);
    let route = format!(
        "[[routes]]\npath = \"/*\"\nrespond = {{ body = \"{body}\", headers = {{ content-type = \"text/plain\" }} }}\n"
    );
    let c = client();
    let on = Host::builder().config(&route).start();
    let r = get(&c, &on.url("/"), &[("accept-encoding", "gzip")]);
    assert_eq!(r.coding(), Some("gzip"));
    assert_eq!(r.decoded(), body.as_bytes());
    let off = Host::builder()
        .config(&format!("[compression]\nenabled = false\n{route}"))
        .start();
    let r = get(&c, &off.url("/"), &[("accept-encoding", "gzip")]);
    assert_eq!(r.coding(), None);
    assert_eq!(r.body, body.as_bytes());
    let only_gzip = Host::builder()
        .config(&format!(
            "[compression]\nbrotli = 0\nzstd = 0\ntypes = [\"text/*\"]\n{route}"
        ))
        .start();
    let r = get(
        &c,
        &only_gzip.url("/"),
        &[("accept-encoding", "br, zstd, gzip;q=0.1")],
    );
    assert_eq!(r.coding(), Some("gzip"));

    for (bad, says) in [
        ("gzip = 12", "compression.gzip"),
        ("types = [\"html\"]", "compression.types"),
        ("level = 3", "level"),
        ("types = [\"text/html/x\"]", "compression.types"),
        ("once_max_bytes = 100\nmemory_bytes = 10", "once_max_bytes"),
    ] {
        let (ok, out) = Host::builder()
            .config(&format!("[compression]\n{bad}\n{route}"))
            .validate();
        assert!(!ok, "{bad} accepted:\n{out}");
        assert!(out.contains(says), "{bad}:\n{out}");
    }
}

/// Present reads the identity body and the client gets present's output
/// compressed: for a proxied page and for a static file (whose kept
/// compressed forms are of the file, never of present's output).
#[test]
fn present_sees_the_identity_body_and_its_output_is_compressed() {
    let up = Upstream::start("app");
    let b = Host::builder().plugin("only-present", "upper");
    let root = b.dir.path().join("site");
    std::fs::create_dir_all(&root).unwrap();
    let html = page(500);
    std::fs::write(root.join("page.html"), &html).unwrap();
    let config = format!(
        "[upstreams.app]\ntargets = [\"{}\"]\n\n\
         [[routes]]\nname = \"files\"\npath = \"/files/*\"\nstatic = {{ root = \"{}\", strip_prefix = \"/files\" }}\n\n\
         [[routes]]\nname = \"app\"\npath = \"/*\"\nproxy = \"app\"\n",
        up.addr,
        root.display()
    );
    let mut host = b.config(&config).start();
    let c = client();
    for accept in ["gzip", "br", "zstd"] {
        let r = get(&c, &host.url("/p?pad=1000"), &[("accept-encoding", accept)]);
        assert_eq!(r.coding(), Some(accept));
        let v: serde_json::Value = serde_json::from_slice(&r.decoded()).expect("json");
        assert_eq!(
            v["PAD"].as_str().unwrap().len(),
            "<p>padding</p>".len() * 1000
        );
        let r = get(
            &c,
            &host.url("/files/page.html"),
            &[("accept-encoding", accept)],
        );
        assert_eq!(r.coding(), Some(accept));
        assert_eq!(r.decoded(), html.to_ascii_uppercase().as_bytes());
    }
    let status = host.terminate(STOP_WITHIN);
    assert!(status.success(), "exit {status}\n{}", host.log());
}
