//! `!>` file directives as an operator sets them up from the plugins'
//! READMEs: `tmpl`, `hide` and `nonce` loaded, a static site whose files
//! name them on their first line. Directives run left to right with their
//! arguments before the route's own present plugins, the line is never
//! served, and a line that cannot run is a 500 naming the file in the log
//! (and a warning from `validate`), with the other files unaffected.

use std::collections::HashSet;
use std::time::Duration;

use kavro_e2e::{client, Host, HostBuilder};

const PAGE: &str = "!> tmpl base.html &> nonce\n\
<html><head>[head]</head><body><script>go()</script><SCRIPT src=\"a.js\"></SCRIPT>[foot] \\[literal]</body></html>\n";

const TEMPLATES: &str = "[head]\n<title>Kavro</title>\n[foot]\n<script src=\"foot.js\"></script>\n";

/// A site at `/` with the three directive plugins, and the same site at
/// `/loud/` where an ordinary present plugin (upper-casing) runs too.
fn site() -> HostBuilder {
    let b = Host::builder()
        .plugin("hide", "hide")
        .plugin("nonce", "nonce")
        .plugin("only_present", "loud");
    // Where `./dev.sh plugins` puts it, named by `file` as its README says.
    let opt_in = b.plugins_dir().join("opt-in");
    std::fs::create_dir_all(&opt_in).unwrap();
    std::fs::copy(kavro_e2e::wasm("tmpl"), opt_in.join("tmpl.wasm")).unwrap();
    let root = b.dir.path().join("site");
    let templates = b.dir.path().join("templates");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(root.join("page.html"), PAGE).unwrap();
    std::fs::write(root.join("secret.html"), "!> hide\nnot for you\n").unwrap();
    std::fs::write(root.join("plain.html"), "<p>plain</p>\n").unwrap();
    std::fs::write(root.join("unknown.html"), "!> nosuch arg\n<p>x</p>\n").unwrap();
    std::fs::write(
        root.join("malformed.html"),
        "!> tmpl &> &> nonce\n<p>x</p>\n",
    )
    .unwrap();
    std::fs::write(templates.join("base.html"), TEMPLATES).unwrap();
    let config = format!(
        "[[routes]]\nname = \"loud\"\npath = \"/loud/*\"\nstatic = {{ root = \"{root}\", strip_prefix = \"/loud\" }}\n\n\
         [[routes]]\nname = \"raw\"\npath = \"/raw/*\"\nstatic = {{ root = \"{root}\", strip_prefix = \"/raw\", directives = false }}\n\n\
         [[routes]]\nname = \"cached\"\npath = \"/cached/*\"\nstatic = {{ root = \"{root}\", strip_prefix = \"/cached\" }}\ncache = {{ ttl = 60 }}\n\n\
         [[routes]]\nname = \"site\"\npath = \"/*\"\nstatic = {{ root = \"{root}\" }}\n\n\
         [[plugins]]\nname = \"tmpl\"\nfile = \"opt-in/tmpl.wasm\"\n[plugins.dirs]\n\"/templates\" = \"{templates}\"\n\n\
         [[plugins]]\nname = \"loud\"\nroutes = [\"loud\"]\n",
        root = root.display(),
        templates = templates.display(),
    );
    b.config(&config)
}

fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The nonce of every `nonce="..."` attribute in `body`.
fn nonces(body: &str) -> Vec<String> {
    body.split("nonce=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

#[test]
fn directives_run_in_order_with_their_arguments_and_the_line_is_not_served() {
    let mut host = site().start();
    let seen = std::sync::Mutex::new(HashSet::new());
    // 32 clients at once: every response has a nonce of its own, written
    // into each script tag (the template's too: tmpl ran first) and into
    // the policy.
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                let c = client();
                for _ in 0..5 {
                    let r = c.get(host.url("/page.html")).send().unwrap();
                    assert_eq!(r.status(), 200);
                    let csp = header(&r, "content-security-policy");
                    let body = r.text().unwrap();
                    assert!(!body.contains("!>"), "{body}");
                    assert!(
                        body.starts_with("<html><head><title>Kavro</title></head>"),
                        "{body}"
                    );
                    assert!(body.contains(" [literal]</body>"), "{body}");
                    let found = nonces(&body);
                    assert_eq!(found.len(), 3, "{body}");
                    assert!(found.iter().all(|n| *n == found[0]), "{body}");
                    assert!(csp.contains(&format!("'nonce-{}'", found[0])), "{csp}");
                    assert!(
                        seen.lock().unwrap().insert(found[0].clone()),
                        "a nonce came twice"
                    );
                }
            });
        }
    });
    assert_eq!(seen.lock().unwrap().len(), 160);

    // The route's own present plugin runs after the directives: it sees
    // the filled template (had it run first, `[HEAD]` would not be filled).
    let r = client().get(host.url("/loud/page.html")).send().unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().unwrap();
    assert!(
        body.starts_with("<HTML><HEAD><TITLE>KAVRO</TITLE></HEAD>"),
        "{body}"
    );
    assert!(body.contains("NONCE=\""), "{body}");

    // A root that runs no directives serves the line as it is.
    let r = client().get(host.url("/raw/page.html")).send().unwrap();
    assert_eq!(r.text().unwrap(), PAGE);
    // What directives make is never stored: a cached route still gives
    // each response its own nonce.
    let mut cached = HashSet::new();
    for _ in 0..3 {
        let r = client().get(host.url("/cached/page.html")).send().unwrap();
        assert_ne!(header(&r, "x-kavro-cache"), "HIT");
        cached.insert(nonces(&r.text().unwrap())[0].clone());
    }
    assert_eq!(cached.len(), 3);

    // A file without a line is served as it is, with its validators.
    let r = client().get(host.url("/plain.html")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("etag"));
    assert_eq!(r.text().unwrap(), "<p>plain</p>\n");

    // A HEAD gets the length of what a GET would get, without the body.
    let r = client().head(host.url("/page.html")).send().unwrap();
    assert_eq!(r.status(), 200);
    let len: usize = header(&r, "content-length").parse().unwrap();
    let got = client().get(host.url("/page.html")).send().unwrap();
    assert_eq!(got.text().unwrap().len(), len);

    let plugins = host.admin_json("/plugins")["plugins"].clone();
    for p in plugins.as_array().unwrap() {
        assert_eq!(p["failures"], 0, "{p}");
    }
    assert!(host.terminate(Duration::from_secs(10)).success());
}

#[test]
fn hide_answers_404_and_a_line_that_cannot_run_is_a_500_naming_the_file() {
    let b = site();
    // `validate` warns about the two files that would be 500s, and passes.
    let (ok, out) = b.validate();
    assert!(ok, "{out}");
    assert!(
        out.contains("unknown.html") && out.contains("`nosuch`"),
        "{out}"
    );
    assert!(
        out.contains("malformed.html") && out.contains("malformed directive line"),
        "{out}"
    );
    assert!(!out.contains("page.html"), "{out}");

    let mut host = b.start();
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let r = client()
            .request(method.clone(), host.url("/secret.html"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 404, "{method}");
        if method == reqwest::Method::GET {
            assert!(!r.text().unwrap().contains("not for you"));
        }
    }
    for file in ["unknown.html", "malformed.html"] {
        let r = client().get(host.url(&format!("/{file}"))).send().unwrap();
        assert_eq!(r.status(), 500, "{file}");
        let body = r.text().unwrap();
        assert!(!body.contains("<p>x</p>"), "{body}");
    }
    host.assert_logged("unknown.html");
    host.assert_logged("no loaded plugin answers the directive `nosuch`");
    host.assert_logged("malformed.html");
    // The rest of the site is unaffected.
    let r = client().get(host.url("/page.html")).send().unwrap();
    assert_eq!(r.status(), 200);

    // A file edited in place is read again: its new line counts.
    let root = host.dir.path().join("site");
    std::fs::write(root.join("unknown.html"), "!> hide\n<p>x</p>\n").unwrap();
    let r = client().get(host.url("/unknown.html")).send().unwrap();
    assert_eq!(r.status(), 404);
    std::fs::write(root.join("unknown.html"), "<p>x</p>\n").unwrap();
    let r = client().get(host.url("/unknown.html")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "<p>x</p>\n");
    assert!(host.terminate(Duration::from_secs(10)).success());
}

#[test]
fn two_plugins_answering_one_directive_are_refused_at_start() {
    let b = Host::builder()
        .plugin("hide", "hide")
        .plugin("hide", "hide-again");
    let (ok, out) = b.validate();
    assert!(!ok, "{out}");
    assert!(out.contains("both answer the directive `hide`"), "{out}");
}
