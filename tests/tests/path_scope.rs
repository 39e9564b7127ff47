//! Plugins scoped to path patterns (`paths = ["/*.html"]`), within their
//! routes: a present chain of two runs in priority order where both apply
//! and only the one that applies elsewhere; a post-only plugin gets only
//! the requests of its paths; a bad pattern is refused with a hint.

use std::time::Duration;

use kavro_e2e::{client, eventually, Host};

/// A static site at `/` with `page.html`, `docs/a.txt`, `a.txt`; two
/// stamps (`<1>`, `<2>`) scoped to different paths, and a post-only
/// plugin scoped to `/*.html`.
fn start() -> Host {
    // One component, two entries: two plugins with their own settings.
    let b = Host::builder()
        .plugin("stamp", "stamp")
        .plugin("only_post", "tail");
    let root = b.dir.path().join("site");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("page.html"), "page").unwrap();
    std::fs::write(root.join("docs/a.txt"), "doc").unwrap();
    std::fs::write(root.join("a.txt"), "text").unwrap();
    let config = format!(
        "[[routes]]\nname = \"site\"\npath = \"/*\"\nstatic = {{ root = \"{}\" }}\n\n\
         [[plugins]]\nname = \"second\"\nfile = \"stamp.wasm\"\npriority = 2\npaths = [\"/*.html\", \"/docs/*\"]\n[plugins.config]\nmark = \"2\"\n\n\
         [[plugins]]\nname = \"first\"\nfile = \"stamp.wasm\"\npriority = 1\npaths = [\"/*.html\"]\n[plugins.config]\nmark = \"1\"\n\n\
         [[plugins]]\nname = \"tail\"\npaths = [\"/*.html\"]\n",
        root.display()
    );
    b.config(&config).start()
}

fn calls(host: &Host, name: &str) -> u64 {
    let plugins = host.admin_json("/plugins")["plugins"].clone();
    let p = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name}: {plugins}"))
        .clone();
    p["calls"].as_u64().unwrap_or_else(|| panic!("{p}"))
}

#[test]
fn a_present_chain_runs_in_order_where_its_paths_apply_and_post_sees_only_its_paths() {
    let mut host = start();
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                let c = client();
                for (path, want) in [
                    ("/page.html", "page<1><2>"),
                    // Written otherwise, the same file: the same plugins.
                    ("/%70age.html", "page<1><2>"),
                    ("/docs/a.txt", "doc<2>"),
                    ("/a.txt", "text"),
                ] {
                    let r = c.get(host.url(path)).send().unwrap();
                    assert_eq!(r.status(), 200, "{path}");
                    assert_eq!(r.text().unwrap(), want, "{path}");
                }
            });
        }
    });
    assert_eq!(calls(&host, "first"), 64);
    assert_eq!(calls(&host, "second"), 96);
    // Post comes after the response: the 64 HTML requests, none other.
    eventually("post has the html requests", || {
        (calls(&host, "tail") == 64).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(calls(&host, "tail"), 64);
    let plugins = host.admin_json("/plugins")["plugins"].clone();
    for p in plugins.as_array().unwrap() {
        assert_eq!(p["failures"], 0, "{p}");
    }
    assert!(host.terminate(Duration::from_secs(10)).success());
}

#[test]
fn a_bad_path_pattern_is_refused_with_a_hint() {
    let b = Host::builder().plugin("stamp", "first").config(
        "[[routes]]\npath = \"/*\"\nrespond = { body = \"x\" }\n\n[[plugins]]\nname = \"first\"\npaths = [\"/a*b\"]\n",
    );
    let (ok, out) = b.validate();
    assert!(!ok, "{out}");
    assert!(out.contains("paths[0]"), "{out}");
    assert!(out.contains("/*.html"), "{out}");
}
