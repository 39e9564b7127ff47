//! `POST /publish` on the traffic listeners: the application's messages to
//! the hub's groups, in the JSON a backend answers with (`@` groups and the
//! message). Authorized by `Authorization: Bearer <secret>`.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{header, Method};
use pingora_http::RequestHeader;

use super::protocol;
use super::Hub;
use crate::actions::Produced;
use crate::config::PublishSettings;

/// The largest publish body read.
pub const MAX_PUBLISH_BYTES: usize = 1 << 20;

/// Whether the request is for the publish endpoint.
pub fn is_publish(settings: &PublishSettings, req: &RequestHeader) -> bool {
    req.uri.path() == settings.path
}

/// Whether the request may publish: `None`, or the answer to send, before
/// its body is read.
pub fn refusal(settings: &PublishSettings, req: &RequestHeader) -> Option<Produced> {
    if req.method != Method::POST {
        let mut p = Produced::text(405, "405 Method Not Allowed: publish with POST\n");
        let _ = p.head.insert_header(header::ALLOW, "POST");
        return Some(p);
    }
    let Some(secret) = &settings.secret else {
        return Some(Produced::text(
            503,
            format!(
                "503 Service Unavailable: publishing is off because no secret is set; \
                 set the environment variable {} for kavro-host\n",
                settings.secret_env
            ),
        ));
    };
    let given = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    if given.is_some_and(|g| same(g, secret.as_bytes())) {
        return None;
    }
    let mut p = Produced::text(
        401,
        "401 Unauthorized: publish with Authorization: Bearer <the publish secret>\n",
    );
    let _ = p
        .head
        .insert_header(header::WWW_AUTHENTICATE, "Bearer realm=\"kavro-publish\"");
    Some(p)
}

/// Compares in time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Delivers an authorized publish; answers how many clients it reached.
pub fn publish(hub: &Hub, body: &Bytes) -> Produced {
    let answer = match protocol::parse(body) {
        Ok(a) => a,
        Err(why) => return Produced::text(400, format!("400 Bad Request: {why}\n")),
    };
    let (Some(to), Some(message)) = (&answer.to, &answer.message) else {
        return Produced::text(
            400,
            "400 Bad Request: a publish names its groups in `@` and carries a message, \
             e.g. {\"@\": \"/room\", \"text\": \"hi\"}\n",
        );
    };
    hub.stats.published.fetch_add(1, Ordering::Relaxed);
    let delivered = hub.deliver(to, message);
    let mut p = Produced::text(200, format!("{{\"delivered\":{delivered}}}\n"));
    let _ = p
        .head
        .insert_header(header::CONTENT_TYPE, "application/json");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: Option<&str>) -> PublishSettings {
        PublishSettings {
            path: "/publish".into(),
            secret_env: "KAVRO_PUBLISH_SECRET".into(),
            secret: secret.map(String::from),
        }
    }

    fn post(auth: Option<&str>) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/publish", None).unwrap();
        if let Some(a) = auth {
            req.insert_header("authorization", a).unwrap();
        }
        req
    }

    #[test]
    fn the_secret_is_required() {
        let on = settings(Some("s3cret"));
        assert!(refusal(&on, &post(Some("Bearer s3cret"))).is_none());
        for bad in [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cretx"),
            Some("s3cret"),
        ] {
            let p = refusal(&on, &post(bad)).unwrap();
            assert_eq!(p.head.status, 401);
        }
        let p = refusal(&settings(None), &post(Some("Bearer x"))).unwrap();
        assert_eq!(p.head.status, 503);
        let get = RequestHeader::build("GET", b"/publish", None).unwrap();
        assert_eq!(refusal(&on, &get).unwrap().head.status, 405);
    }

    #[test]
    fn a_publish_needs_groups_and_a_message() {
        let hub = Hub::default();
        for bad in [&b"nope"[..], br#"{"text": "hi"}"#, br#"{"@": "/g"}"#] {
            let p = publish(&hub, &Bytes::from_static(bad));
            assert_eq!(p.head.status, 400);
        }
        let p = publish(&hub, &Bytes::from_static(br#"{"@": "/g", "text": "hi"}"#));
        assert_eq!(p.head.status, 200);
    }
}
