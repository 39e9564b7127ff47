//! The clock capability, as a plugin author meets it: denied with a hint
//! until the plugin's settings grant it; granted, wall time, monotonic time
//! and the call's time left; and granted only through `capabilities`.

use kavro_e2e::{client, respond_route, Host};

fn host(grant: &str) -> Host {
    Host::builder()
        .plugin("clock", "clock")
        .config(&format!(
            "{}\n[[plugins]]\nname = \"clock\"\n{grant}\nlimits = {{ deadline_ms = 200 }}\n",
            respond_route("root", "/*", "hello")
        ))
        .start()
}

fn header(r: &reqwest::blocking::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

fn number(r: &reqwest::blocking::Response, name: &str) -> u64 {
    header(r, name)
        .unwrap_or_else(|| panic!("no {name}: {:?}", header(r, "x-clock-error")))
        .parse()
        .unwrap()
}

#[test]
fn denied_with_a_hint_until_granted() {
    let host = host("");
    let r = client().get(host.url("/")).send().unwrap();
    assert_eq!(r.status(), 200);
    let error = header(&r, "x-clock-error").expect("the call is refused");
    assert!(error.contains("Denied"), "{error}");
    assert!(error.contains("was not granted `clock`"), "{error}");
    assert!(error.contains("capabilities = [\\\"clock\\\"]"), "{error}");
    assert_eq!(r.text().unwrap(), "hello");
}

#[test]
fn granted_it_tells_the_time_and_the_time_left() {
    let host = host("capabilities = [\"clock\"]");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let c = client();
    let first = c.get(host.url("/")).send().unwrap();
    assert_eq!(header(&first, "x-clock-error"), None);
    let wall = number(&first, "x-wall-ms");
    assert!(
        wall >= before && wall < before + 10_000,
        "{wall} vs {before}"
    );
    let left = number(&first, "x-remaining-ms");
    assert!(left <= 200, "{left} ms left of a 200 ms deadline");
    let mono = number(&first, "x-monotonic-ns");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let second = c.get(host.url("/")).send().unwrap();
    assert!(number(&second, "x-monotonic-ns") >= mono + 5_000_000);
}

#[test]
fn it_is_granted_in_capabilities_and_env_is_not() {
    let b = Host::builder().plugin("clock", "clock").config(&format!(
        "{}\n[[plugins]]\nname = \"clock\"\ncapabilities = [\"clock\", \"env\", \"time\"]\n",
        respond_route("root", "/*", "hello")
    ));
    let (ok, out) = b.validate();
    assert!(!ok, "{out}");
    assert!(
        out.contains("`env` cannot be listed in capabilities"),
        "{out}"
    );
    assert!(
        out.contains("env = [\\\"VAR\\\", ...]") || out.contains("env = [\"VAR\", ...]"),
        "{out}"
    );
    assert!(out.contains("unknown capability `time`"), "{out}");
    assert!(out.contains("clock"), "{out}");
    assert!(
        !out.contains("capabilities[0]"),
        "clock itself is known: {out}"
    );
}
