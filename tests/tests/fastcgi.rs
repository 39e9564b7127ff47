//! The fastcgi action against a real php-fpm on a unix socket: queries,
//! forms, uploads, redirects, cookies, PHP's own 404, large output, CGI
//! params, stderr, connection reuse, timeouts and a stopped php-fpm.

use kavro_e2e::php::PhpFpm;
use kavro_e2e::{client, Host};
use serde_json::Value;

/// A `*.php` route to php-fpm and a static route for the rest of the app.
fn php_config(fpm: &PhpFpm, extra: &str) -> String {
    format!(
        "[[routes]]\nname = \"php\"\npath = \"/*.php\"\n\
         [routes.fastcgi]\naddress = \"{addr}\"\nroot = \"{root}\"\ntimeout_ms = 1500\n{extra}\n\
         [[routes]]\nname = \"dirs\"\npath = \"/sub/\"\n\
         [routes.fastcgi]\naddress = \"{addr}\"\nroot = \"{root}\"\n\n\
         [[routes]]\nname = \"assets\"\npath = \"/*\"\n\
         [routes.static]\nroot = \"{root}\"\n",
        addr = fpm.address(),
        root = fpm.root().display(),
    )
}

fn json(resp: reqwest::blocking::Response) -> Value {
    resp.json().expect("JSON from PHP")
}

#[test]
fn php_app_end_to_end() {
    let fpm = PhpFpm::start(2);
    let host = Host::builder().config(&php_config(&fpm, "")).start();
    let c = client();

    // A GET with a query.
    let r = c.get(host.url("/index.php?a=1&b=two")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().contains_key("x-request-id"));
    let v = json(r);
    assert_eq!(v["get"]["a"], "1");
    assert_eq!(v["get"]["b"], "two");

    // A form POST.
    let v = json(
        c.post(host.url("/form.php"))
            .form(&[("name", "Ada"), ("lang", "php")])
            .send()
            .unwrap(),
    );
    assert_eq!(v["method"], "POST");
    assert_eq!(v["post"]["name"], "Ada");

    // A file upload: 200 kB of bytes arrive intact.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let digest = md5_of(&data);
    let form = reqwest::blocking::multipart::Form::new()
        .text("note", "hello")
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(data)
                .file_name("blob.bin")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
    let v = json(
        c.post(host.url("/upload.php"))
            .multipart(form)
            .send()
            .unwrap(),
    );
    assert_eq!(v["name"], "blob.bin");
    assert_eq!(v["size"], 200_000);
    assert_eq!(v["md5"], digest.as_str());
    assert_eq!(v["note"], "hello");

    // A redirect: Location without Status is a 302.
    let r = c.get(host.url("/redirect.php")).send().unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/index.php?from=redirect");

    // Cookies: two Set-Cookie headers out, the client's cookies in.
    let r = c
        .get(host.url("/cookies.php"))
        .header("cookie", "x=1; y=2")
        .send()
        .unwrap();
    let set: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(set, ["first=one", "second=two"]);
    let v = json(r);
    assert_eq!(v["cookies"]["x"], "1");
    assert_eq!(v["cookies"]["y"], "2");

    // PHP's own 404, with its body.
    let r = c.get(host.url("/notfound.php")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().unwrap(), "php says: no such article\n");

    // A large output arrives whole.
    let r = c.get(host.url("/large.php?n=3000000")).send().unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().unwrap();
    assert_eq!(body.len(), 3_000_000);
    assert!(body.starts_with(b"0123456789"));

    // Index files and PATH_INFO.
    let r = c.get(host.url("/sub/")).send().unwrap();
    assert_eq!(r.text().unwrap(), "sub index, path info: \n");

    // Non-PHP files come from the static route.
    let r = c.get(host.url("/style.css")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
}

/// Over TCP this time.
#[test]
fn cgi_params() {
    let fpm = PhpFpm::start_tcp(1);
    let host = Host::builder()
        .config(&php_config(&fpm, "params = { APP_ENV = \"test\" }"))
        .start();
    let r = client()
        .post(host.url("/server.php/extra/path?x=1"))
        .header("x-custom", "yes")
        .header("proxy", "http://evil.example")
        .header("content-type", "text/plain")
        .body("raw body")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json(r);
    let root = std::fs::canonicalize(fpm.root()).unwrap();
    assert_eq!(
        v["SCRIPT_FILENAME"],
        root.join("server.php").display().to_string()
    );
    assert_eq!(v["SCRIPT_NAME"], "/server.php");
    assert_eq!(v["PATH_INFO"], "/extra/path");
    assert_eq!(v["QUERY_STRING"], "x=1");
    assert_eq!(v["REQUEST_METHOD"], "POST");
    assert_eq!(v["REQUEST_URI"], "/server.php/extra/path?x=1");
    assert_eq!(v["CONTENT_TYPE"], "text/plain");
    assert_eq!(v["CONTENT_LENGTH"], "8");
    assert_eq!(v["body"], "raw body");
    assert_eq!(v["SERVER_NAME"], "127.0.0.1");
    assert_eq!(v["SERVER_PORT"], host.addr.port().to_string());
    assert_eq!(v["SERVER_ADDR"], "127.0.0.1");
    assert_eq!(v["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(v["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(v["GATEWAY_INTERFACE"], "CGI/1.1");
    assert_eq!(v["HTTP_X_CUSTOM"], "yes");
    assert_eq!(v["HTTP_PROXY"], Value::Null, "httpoxy: Proxy must not pass");
    assert_eq!(v["HTTPS"], Value::Null, "plain HTTP listener");
    assert!(v["SERVER_SOFTWARE"].as_str().unwrap().starts_with("kavro/"));
}

#[test]
fn scripts_outside_the_root_or_missing_are_404_without_php() {
    let fpm = PhpFpm::start(1);
    // A secret PHP file beside (outside) the document root.
    std::fs::write(fpm.dir.path().join("secret.php"), "<?php echo 'secret';").unwrap();
    let host = Host::builder().config(&php_config(&fpm, "")).start();
    // Raw requests: an HTTP client would normalize the dot segments away.
    for path in [
        "/missing.php",
        "/../secret.php",
        "/%2e%2e/secret.php",
        "/sub/%2E%2E/%2E%2E/secret.php",
        "/..%2fsecret.php",
        "/sub/../../secret.php/info",
    ] {
        let out = host
            .raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        assert!(out.starts_with("HTTP/1.1 404"), "{path}: {out}");
        assert!(!out.contains("secret"), "{path}: {out}");
    }
    // The 404 for a missing script is the host's own ("not found"), not
    // php-fpm's ("File not found."): it never reached php-fpm.
    let r = client().get(host.url("/missing.php")).send().unwrap();
    assert_eq!(r.text().unwrap(), "not found\n");

    // Unless configured otherwise: then php-fpm answers for it.
    let host = Host::builder()
        .config(&php_config(&fpm, "check_exists = false"))
        .start();
    let r = client().get(host.url("/missing.php")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().unwrap(), "File not found.\n");
}

#[test]
fn stderr_is_logged_and_connections_are_reused() {
    let fpm = PhpFpm::start(2);
    let host = Host::builder().config(&php_config(&fpm, "")).start();
    let c = client();
    let r = c.get(host.url("/stderr.php")).send().unwrap();
    assert_eq!(r.text().unwrap(), "logged\n");
    kavro_e2e::eventually("php's stderr in the host log", || {
        host.log()
            .contains("kavro-stderr-marker from php")
            .then_some(())
    });
    // Sequential requests reuse one kept-alive connection: php-fpm's
    // socket sees one connection at a time, so count the accepted ones.
    for _ in 0..20 {
        assert_eq!(c.get(host.url("/index.php")).send().unwrap().status(), 200);
    }
    // Short connections would all be closed by now.
    let conns = established_to(&fpm.socket());
    assert!(
        (1..=2).contains(&conns),
        "{conns} connections open to php-fpm after 21 requests"
    );
}

/// Open unix-socket connections to `sock`, from /proc/net/unix.
fn established_to(sock: &std::path::Path) -> usize {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let name = sock.display().to_string();
    // The listening socket plus one line per accepted connection carry the path.
    table
        .lines()
        .filter(|l| l.ends_with(&name))
        .count()
        .saturating_sub(1)
}

#[test]
fn timeout_is_504_and_a_stopped_php_fpm_is_502() {
    let mut fpm = PhpFpm::start(2);
    let host = Host::builder().config(&php_config(&fpm, "")).start();
    let c = client();
    let r = c.get(host.url("/slow.php?ms=3000")).send().unwrap();
    assert_eq!(r.status(), 504);
    assert!(r.text().unwrap().contains("did not answer in time"));
    // The host goes on serving.
    assert_eq!(c.get(host.url("/index.php")).send().unwrap().status(), 200);

    fpm.stop();
    let r = c.get(host.url("/index.php")).send().unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().unwrap().contains("could not be reached"));
}

#[test]
fn oversized_request_body_is_413() {
    let fpm = PhpFpm::start(1);
    let host = Host::builder()
        .config(&php_config(&fpm, "max_request_bytes = 1000"))
        .start();
    let r = client()
        .post(host.url("/form.php"))
        .body(vec![b'x'; 5000])
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
}

/// MD5, for comparing with PHP's md5_file (the tests have no md5 crate).
fn md5_of(data: &[u8]) -> String {
    let out = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .expect("md5sum");
    let hex = String::from_utf8_lossy(&out.stdout);
    hex.split_whitespace().next().unwrap().to_string()
}

/// One connection to php-fpm and room for one request to wait: of six at
/// once for a script that sleeps 500 ms, the one running and the one
/// waiting answer 200, the rest 503 with Retry-After at once.
#[test]
fn a_busy_fastcgi_server_sheds_with_retry_after() {
    let fpm = PhpFpm::start(2);
    let host = Host::builder()
        .config(&php_config(
            &fpm,
            "max_connections = 1\nmax_queue = 1\nqueue_timeout_ms = 3000",
        ))
        .start();
    let (answers, took) = kavro_e2e::burst(&host, 6, "/slow.php?ms=500");
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    assert!(ok >= 2, "{answers:?}");
    assert!(ok < 6, "none was shed: {answers:?}");
    for (status, wait, body) in &answers {
        match status {
            200 => assert_eq!(body, "late\n"),
            503 => {
                assert!(matches!(wait, Some(1..)), "Retry-After {wait:?}");
                assert!(body.contains("queue is full"), "{body}");
                assert!(body.contains(&fpm.address()), "{body}");
            }
            s => panic!("status {s}: {body}"),
        }
    }
    assert!(
        took < std::time::Duration::from_secs(10),
        "the burst took {took:?}"
    );
    // The connection is free again.
    let r = client().get(host.url("/index.php")).send().unwrap();
    assert_eq!(r.status(), 200);
}

/// One connection held for 1 s and a wait of 200 ms: the requests that
/// wait give up with 503 and Retry-After.
#[test]
fn a_fastcgi_wait_that_runs_out_is_503() {
    let fpm = PhpFpm::start(2);
    let host = Host::builder()
        .config(&php_config(
            &fpm,
            "max_connections = 1\nmax_queue = 10\nqueue_timeout_ms = 200",
        ))
        .start();
    let (answers, took) = kavro_e2e::burst(&host, 3, "/slow.php?ms=1000");
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    assert!(ok >= 1, "{answers:?}");
    let ran_out = answers
        .iter()
        .filter(|(s, w, body)| {
            *s == 503 && w.is_some() && body.contains("stayed in use for the whole wait")
        })
        .count();
    assert!(ran_out >= 1, "{answers:?}");
    assert_eq!(ok + ran_out, 3, "{answers:?}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "the burst took {took:?}"
    );
}

/// A FastCGI server that sees the site under another path (php-fpm in a
/// container): `script_root` names it. Scripts are checked under the local
/// root (a bare copy of the names here), and SCRIPT_FILENAME, DOCUMENT_ROOT
/// and PATH_TRANSLATED are written under the server's own.
#[test]
fn script_root_is_the_path_the_fastcgi_server_sees() {
    let fpm = PhpFpm::start(1);
    let b = Host::builder();
    let local = b.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    // Empty: only the names matter here, php-fpm reads its own copy.
    std::fs::write(local.join("server.php"), "").unwrap();
    let seen = std::fs::canonicalize(fpm.root()).unwrap();
    let config = format!(
        "[[routes]]\npath = \"/*.php\"\n[routes.fastcgi]\naddress = \"{}\"\nroot = \"{}\"\nscript_root = \"{}\"\n",
        fpm.address(),
        local.display(),
        seen.display()
    );
    let mut host = b.config(&config).start();
    let r = client()
        .get(host.url("/server.php/extra/path"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json(r);
    assert_eq!(
        v["SCRIPT_FILENAME"],
        seen.join("server.php").display().to_string()
    );
    assert_eq!(v["DOCUMENT_ROOT"], seen.display().to_string());
    assert_eq!(
        v["PATH_TRANSLATED"],
        seen.join("extra/path").display().to_string()
    );
    // A script the local root lacks is a 404 without asking php-fpm.
    let r = client().get(host.url("/counter.php")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert!(host.terminate(std::time::Duration::from_secs(10)).success());

    let bad = Host::builder().config(&format!(
        "[[routes]]\npath = \"/*.php\"\n[routes.fastcgi]\naddress = \"{}\"\nroot = \"{}\"\nscript_root = \"var/www\"\n",
        fpm.address(),
        local.display()
    ));
    let (ok, out) = bad.validate();
    assert!(!ok, "{out}");
    assert!(
        out.contains("script_root") && out.contains("absolute"),
        "{out}"
    );
}
