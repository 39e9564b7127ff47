//! `[[servers]]`: listeners with routes of their own, told apart by host
//! names where they share one; the top-level routes answer on every other
//! listener (the `--listen` one here, which leaves the servers' listeners
//! in place). Two servers claiming one listener for the same hosts are
//! refused. 32 clients at once, then SIGTERM.

use std::time::Duration;

use kavro_e2e::{client, free_port, Host};

fn get(port: u16, host: &str, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header("host", host)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

#[test]
fn servers_answer_on_their_own_listeners_for_their_host_names() {
    let (shared, wildcard) = (free_port(), free_port());
    let config = format!(
        "[[routes]]\npath = \"/*\"\nrespond = {{ body = \"top\" }}\n\n\
         [[servers]]\nlisten = [\"127.0.0.1:{shared}\"]\nhostnames = [\"a.test\"]\n\
         [[servers.routes]]\nname = \"a-home\"\npath = \"/*\"\nrespond = {{ body = \"a\" }}\n\n\
         [[servers]]\nlisten = [\"127.0.0.1:{shared}\"]\nhostnames = [\"b.test\", \"*.b.test\"]\n\
         [[servers.routes]]\npath = \"/*\"\nrespond = {{ body = \"b\" }}\n\n\
         [[servers]]\nlisten = [\"0.0.0.0:{wildcard}\"]\n\
         [[servers.routes]]\npath = \"/only\"\nrespond = {{ body = \"c\" }}\n"
    );
    let mut host = Host::builder().config(&config).start();
    let main = host.addr.port();
    // The wildcard listener may take a moment after the main one.
    kavro_e2e::eventually("the servers' listeners accept", || {
        std::net::TcpStream::connect(("127.0.0.1", wildcard)).ok()
    });
    std::thread::scope(|s| {
        for _ in 0..32 {
            s.spawn(|| {
                assert_eq!(get(main, "a.test", "/"), (200, "top".into()));
                assert_eq!(get(shared, "a.test", "/x"), (200, "a".into()));
                assert_eq!(get(shared, "b.test", "/x"), (200, "b".into()));
                assert_eq!(get(shared, "www.b.test", "/"), (200, "b".into()));
                assert_eq!(get(shared, "c.test", "/").0, 404);
                assert_eq!(get(wildcard, "any.test", "/only"), (200, "c".into()));
                assert_eq!(get(wildcard, "any.test", "/other").0, 404);
            });
        }
    });
    assert!(host.terminate(Duration::from_secs(10)).success());
}

#[test]
fn two_servers_claiming_one_listener_for_the_same_hosts_are_refused() {
    let port = free_port();
    let b = Host::builder().config(&format!(
        "[[servers]]\nlisten = [\"127.0.0.1:{port}\"]\n[[servers.routes]]\npath = \"/*\"\nrespond = {{ body = \"a\" }}\n\n\
         [[servers]]\nlisten = [\"127.0.0.1:{port}\"]\nhostnames = [\"b.test\"]\n[[servers.routes]]\npath = \"/*\"\nrespond = {{ body = \"b\" }}\n\n\
         [[servers]]\nlisten = [\"localhost:{port}\"]\n"
    ));
    let (ok, out) = b.validate();
    assert!(!ok, "{out}");
    assert!(
        out.contains("servers[1].listen") && out.contains("servers[0] already answers"),
        "{out}"
    );
    assert!(
        out.contains("servers[2].listen[0]") && out.contains("not an IP address"),
        "{out}"
    );
}
