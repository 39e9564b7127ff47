//! Each phase alone, as a first plugin is written: a plugin that exports
//! one phase and nothing else, on a proxied, a static, a FastCGI and a
//! respond route, under 32 concurrent connections, with pooled and with
//! per-request instances. Every request is answered, and the host then
//! stops on SIGTERM.

use std::time::Duration;

use kavro_e2e::sites::{connection, Site, PATHS};
use kavro_e2e::{eventually, respond_route, Host};

const CONNECTIONS: usize = 32;
/// Requests each connection sends to each route.
const ROUNDS: usize = 3;
/// How long a host may take to stop on SIGTERM once its requests are done.
const STOP_WITHIN: Duration = Duration::from_secs(5);

const PHASES: [&str; 5] = ["prime", "prepare", "present", "package", "post"];

/// Sends `ROUNDS` requests per route on each of `CONNECTIONS` connections
/// at once (odd rounds with `expect.extra`), and checks each answer.
/// Returns how many requests were sent.
fn load(host: &Host, expect: &Expect) -> usize {
    let (extra, check, body_check) = (expect.extra, expect.head, expect.body);
    let urls: Vec<String> = PATHS.iter().map(|p| host.url(p)).collect();
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let urls = &urls;
                s.spawn(move || {
                    let c = connection();
                    let mut failures = Vec::new();
                    for round in 0..ROUNDS {
                        for (path, url) in PATHS.iter().zip(urls) {
                            let with_extra = round % 2 == 1 && extra.is_some();
                            let mut req = c.get(url);
                            if let (true, Some((k, v))) = (with_extra, extra) {
                                req = req.header(k, v);
                            }
                            let outcome = req
                                .send()
                                .map_err(|e| format!("{path}: no answer: {e}"))
                                .and_then(|r| {
                                    check(path, &r)?;
                                    let body =
                                        r.text().map_err(|e| format!("{path}: body: {e}"))?;
                                    body_check(path, with_extra, &body)
                                });
                            if let Err(e) = outcome {
                                failures.push(e);
                            }
                        }
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, first: {}\n{}",
        failures.len(),
        CONNECTIONS * ROUNDS * PATHS.len(),
        failures[0],
        host.log()
    );
    CONNECTIONS * ROUNDS * PATHS.len()
}

fn ok_status(path: &str, r: &reqwest::blocking::Response) -> Result<(), String> {
    match r.status().as_u16() {
        200 => Ok(()),
        s => Err(format!("{path}: status {s}")),
    }
}

/// What the route itself answers (the plugin left the body alone).
fn route_body(path: &str, body: &str) -> Result<(), String> {
    let expected = match path {
        "/proxy/echo" => "\"method\":\"GET\"",
        "/hello.txt" => "hello from a file",
        "/index.php" => "\"page\":\"index\"",
        _ => "hello from respond",
    };
    if body
        .to_ascii_lowercase()
        .contains(&expected.to_ascii_lowercase())
    {
        Ok(())
    } else {
        Err(format!("{path}: expected `{expected}` in {body:?}"))
    }
}

type HeadCheck = fn(&str, &reqwest::blocking::Response) -> Result<(), String>;
/// Given the path, whether `Expect::extra` was sent, and the body.
type BodyCheck = fn(&str, bool, &str) -> Result<(), String>;

/// What a phase's test plugin does to the answers.
struct Expect {
    /// A header sent on odd rounds: the plugin answers those itself.
    extra: Option<(&'static str, &'static str)>,
    head: HeadCheck,
    body: BodyCheck,
}

/// A request sent with `x-answer` is answered by `phase`'s plugin; any
/// other by the route.
fn answered_by(phase: &str, path: &str, answered: bool, body: &str) -> Result<(), String> {
    match answered {
        true if body == format!("answered by {phase}\n") => Ok(()),
        true => Err(format!("{path}: {phase} did not answer: {body:?}")),
        false => route_body(path, body),
    }
}

/// The phase's own mark on each answer, as its test plugin makes it.
fn expect(phase: &str) -> Expect {
    let answer = Some(("x-answer", "1"));
    let unchanged: BodyCheck = |path, _, body| route_body(path, body);
    match phase {
        "prime" => Expect {
            extra: answer,
            head: ok_status,
            body: |path, answered, body| answered_by("prime", path, answered, body),
        },
        "prepare" => Expect {
            extra: answer,
            head: ok_status,
            body: |path, answered, body| answered_by("prepare", path, answered, body),
        },
        "present" => Expect {
            extra: None,
            head: ok_status,
            body: |path, _, body| {
                route_body(path, body)?;
                if body.bytes().any(|b| b.is_ascii_lowercase()) {
                    return Err(format!("{path}: present did not upper-case {body:?}"));
                }
                Ok(())
            },
        },
        "package" => Expect {
            extra: None,
            head: |path, r| {
                ok_status(path, r)?;
                match r.headers().get("x-packaged") {
                    Some(v) if v == "yes" => Ok(()),
                    _ => Err(format!("{path}: no x-packaged header")),
                }
            },
            body: unchanged,
        },
        _ => Expect {
            extra: None,
            head: ok_status,
            body: unchanged,
        },
    }
}

/// The plugin's calls so far, from `GET /plugins`.
fn calls(host: &Host) -> u64 {
    host.admin_json("/plugins")["plugins"][0]["calls"]
        .as_u64()
        .expect("calls")
}

/// One phase alone under load, then SIGTERM.
/// `isolation` and `limits` are the plugin's settings. Its deadline is
/// generous: two of these loads at once saturate a 2-core machine, and
/// these tests are about every request being answered, not deadlines
/// (stuck_calls.rs is).
fn serve_alone(site: &Site, phase: &str, isolation: &str, limits: &str) {
    let settings =
        format!("isolation = \"{isolation}\"\n[plugins.limits]\ndeadline_ms = 5000\n{limits}");
    let mut host = site.host(phase, &settings);
    let sent = load(&host, &expect(phase)) as u64;
    if phase == "post" {
        // Post runs after each response is written: every request gets one.
        eventually("a post call for every request", || {
            (calls(&host) >= sent).then_some(())
        });
    }
    let status = host.terminate(STOP_WITHIN);
    assert!(
        status.success(),
        "{phase} ({settings}): exit {status}\n{}",
        host.log()
    );
}

#[test]
fn each_phase_alone_with_pooled_instances() {
    let site = Site::start();
    for phase in PHASES {
        serve_alone(&site, phase, "pooled", "");
    }
}

#[test]
fn each_phase_alone_with_an_instance_per_request() {
    let site = Site::start();
    for phase in PHASES {
        serve_alone(&site, phase, "request", "");
    }
}

/// The pool starts with the one instance that described the plugin and
/// grows under load; instances that serve two requests are replaced, so
/// it keeps emptying and refilling. Fresh hosts, several times over: a
/// request whose first plugin call is present must never wait on the pool.
#[test]
fn present_alone_while_the_pool_grows() {
    let site = Site::start();
    for _ in 0..4 {
        serve_alone(&site, "present", "pooled", "max_uses = 2");
    }
}

/// A post slower than the traffic it follows, under 32 connections: one
/// completion holds the only post slot for a second or more while the
/// connections keep sending, so completions queue for batches, and once a
/// worker's queue is full (256) its finished requests wait for room instead
/// of piling up tasks and instances until calls miss their deadlines. Every
/// completion is delivered, none fails, the instances stay within the slot,
/// and the host then stops on SIGTERM.
#[test]
fn a_post_slower_than_the_traffic_loses_no_completion() {
    const SLOTS: u64 = 1;
    // More than the two workers' queues hold (256 each).
    const EACH: usize = 20;
    let config = format!(
        "[server]\npost_concurrency = {SLOTS}\n{}\n[[plugins]]\nname = \"only\"\n[plugins.limits]\ndeadline_ms = 60000\n",
        respond_route("r", "/*", "ok")
    );
    let mut host = Host::builder()
        .plugin("only-post", "only")
        .config(&config)
        .start();
    let url = host.url("/");
    // The slot is busy with this completion while the others arrive.
    let slow = connection()
        .get(&url)
        .header("x-work", "300000000")
        .send()
        .expect("the slow request");
    assert_eq!(slow.status(), 200);
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let url = &url;
                s.spawn(move || {
                    let c = connection();
                    (0..EACH)
                        .filter_map(|_| match c.get(url).header("x-work", "20000").send() {
                            Ok(r) if r.status() == 200 => None,
                            Ok(r) => Some(format!("status {}", r.status())),
                            Err(e) => Some(format!("no answer: {e}")),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client thread"))
            .collect()
    });
    assert!(failures.is_empty(), "{failures:?}\n{}", host.log());
    let sent = (CONNECTIONS * EACH) as u64 + 1;
    eventually("a post call for every request", || {
        (calls(&host) >= sent).then_some(())
    });
    let p = host.admin_json("/plugins")["plugins"][0].clone();
    assert_eq!(p["failures"], 0, "{p}\n{}", host.log());
    // The instance that described the plugin, and one for each slot.
    let created = p["instances_created"].as_u64().unwrap();
    assert!(
        created <= SLOTS + 1,
        "{created} instances for {SLOTS} slots"
    );
    let post = host.admin_json("/diagnostics")["post"].clone();
    assert_eq!(post["limit"], SLOTS, "{post}");
    assert!(post["waited"].as_u64().unwrap() > 0, "{post}");
    let status = host.terminate(STOP_WITHIN);
    assert!(status.success(), "exit {status}\n{}", host.log());
}
