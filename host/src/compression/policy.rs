//! Which responses Kavro compresses, and what that changes in their head.

use http::{header, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};

use super::{acceptable, Encoding};

/// `[compression]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Bodies known to be shorter go as they are.
    pub min_bytes: u64,
    /// Media types compressed: `type/subtype`, or `type/*`.
    pub types: Vec<String>,
    /// Levels by coding, in [`Encoding::ALL`]'s order; 0 never offers it.
    pub levels: [u32; 3],
    /// Static files and stored responses up to this size are compressed
    /// once and kept; larger ones are compressed as they are sent.
    pub once_max_bytes: u64,
}

/// Media types whose bodies shrink: text, and the formats written as text.
pub const DEFAULT_TYPES: &[&str] = &[
    "text/html",
    "text/css",
    "text/plain",
    "text/xml",
    "text/javascript",
    "text/markdown",
    "text/csv",
    "application/javascript",
    "application/json",
    "application/ld+json",
    "application/manifest+json",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/wasm",
    "image/svg+xml",
    "image/x-icon",
    "font/ttf",
    "font/otf",
];

impl Settings {
    pub fn level(&self, coding: Encoding) -> u32 {
        self.levels[coding as usize]
    }

    fn compressible_type(&self, content_type: &[u8]) -> bool {
        let Ok(ct) = std::str::from_utf8(content_type) else {
            return false;
        };
        let essence = ct.split(';').next().unwrap_or("").trim();
        // A stream of events must reach the client event by event.
        if essence.eq_ignore_ascii_case("text/event-stream") {
            return false;
        }
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(kind) => essence
                .split_once('/')
                .is_some_and(|(k, _)| k.eq_ignore_ascii_case(kind)),
            None => essence.eq_ignore_ascii_case(t),
        })
    }
}

/// Decides whether this response goes compressed, and in which coding;
/// `head` is made to say so. A response whose body could be compressed
/// gets `Vary: Accept-Encoding` whatever this client is sent, so that a
/// shared cache keeps the two apart.
///
/// Never compressed: a body already encoded, one the origin marks
/// `no-transform`, a part (206, or any answer to a `Range` request), a
/// type not listed, or a body known to be under `min_bytes`.
pub fn plan(s: &Settings, req: &RequestHeader, head: &mut ResponseHeader) -> Option<Encoding> {
    let status = head.status.as_u16();
    if status == 304 {
        // A client that asks for a coding and holds the compressed form
        // (its weak tag): the 304 says what that 200 said, so a cache can
        // freshen it.
        if validates_compressed(req, head) && !acceptable(&req.headers).is_empty() {
            add_vary(head);
            weaken_etag(head);
        }
        return None;
    }
    if status < 200 || matches!(status, 204 | 206) {
        return None;
    }
    let h = &head.headers;
    if h.get(header::CONTENT_ENCODING)
        .is_some_and(|ce| !ce.as_bytes().eq_ignore_ascii_case(b"identity"))
        || h.contains_key(header::CONTENT_RANGE)
        || no_transform(head)
        || !h
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| s.compressible_type(ct.as_bytes()))
    {
        return None;
    }
    let short = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len < s.min_bytes);
    if short {
        return None;
    }
    add_vary(head);
    if req.headers.contains_key(header::RANGE) {
        return None;
    }
    let coding = acceptable(&req.headers)
        .into_iter()
        .find(|&c| s.level(c) > 0)?;
    let _ = head.insert_header(header::CONTENT_ENCODING, coding.token());
    head.remove_header(&header::CONTENT_LENGTH);
    // Ranges of the identity body are not ranges of what is sent.
    head.remove_header(&header::ACCEPT_RANGES);
    weaken_etag(head);
    Some(coding)
}

/// Whether the request's If-None-Match names the weak form of `head`'s
/// strong tag, which only a compressed response carried.
fn validates_compressed(req: &RequestHeader, head: &ResponseHeader) -> bool {
    let Some(tag) = head.headers.get(header::ETAG).and_then(|t| t.to_str().ok()) else {
        return false;
    };
    if tag.starts_with("W/") {
        return false;
    }
    req.headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().strip_prefix("W/") == Some(tag))
}

fn no_transform(head: &ResponseHeader) -> bool {
    head.headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
}

/// Adds `accept-encoding` to `Vary`, unless it is there (or `*` is).
fn add_vary(head: &mut ResponseHeader) {
    let listed = head
        .headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|n| {
            let n = n.trim();
            n == "*" || n.eq_ignore_ascii_case("accept-encoding")
        });
    if listed {
        return;
    }
    if head.headers.contains_key(header::VARY) {
        let _ = head.append_header(header::VARY, "accept-encoding");
    } else {
        // Most responses have no Vary: a name parsed once, no case copy.
        let value = HeaderValue::from_static("accept-encoding");
        head.insert_parsed_header(&header::VARY, "vary", value);
    }
}

/// The compressed body is not byte for byte the one a strong tag names
/// (RFC 9110 §8.8.1); a weak tag still matches it in `If-None-Match`.
fn weaken_etag(head: &mut ResponseHeader) {
    let Some(tag) = head.headers.get(header::ETAG) else {
        return;
    };
    if tag.as_bytes().starts_with(b"W/") {
        return;
    }
    let mut weak = b"W/".to_vec();
    weak.extend_from_slice(tag.as_bytes());
    if let Ok(weak) = HeaderValue::from_bytes(&weak) {
        let _ = head.insert_header(header::ETAG, weak);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            min_bytes: 100,
            types: DEFAULT_TYPES.iter().map(|t| t.to_string()).collect(),
            levels: [4, 3, 6],
            once_max_bytes: 1 << 20,
        }
    }

    fn req(accept: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("accept-encoding", accept).unwrap();
        r
    }

    fn head(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.insert_header("content-type", "text/html; charset=utf-8")
            .unwrap();
        h.insert_header("content-length", "5000").unwrap();
        h.insert_header("etag", "\"abc\"").unwrap();
        h.insert_header("accept-ranges", "bytes").unwrap();
        for (k, v) in headers {
            h.insert_header(k.to_string(), *v).unwrap();
        }
        h
    }

    #[test]
    fn a_compressed_head_says_so() {
        let mut h = head(&[]);
        assert_eq!(
            plan(&settings(), &req("gzip, br"), &mut h),
            Some(Encoding::Brotli)
        );
        assert_eq!(h.headers["content-encoding"], "br");
        assert_eq!(h.headers["vary"], "accept-encoding");
        assert_eq!(h.headers["etag"], "W/\"abc\"");
        assert!(!h.headers.contains_key("content-length"));
        assert!(!h.headers.contains_key("accept-ranges"));
    }

    #[test]
    fn identity_still_varies() {
        let mut h = head(&[]);
        assert_eq!(plan(&settings(), &req("identity"), &mut h), None);
        assert_eq!(h.headers["vary"], "accept-encoding");
        assert_eq!(h.headers["content-length"], "5000");
        let mut h = head(&[("vary", "Accept-Encoding, Cookie")]);
        plan(&settings(), &req("gzip"), &mut h);
        assert_eq!(h.headers.get_all("vary").iter().count(), 1);
    }

    #[test]
    fn what_is_never_compressed() {
        let s = settings();
        for (name, headers) in [
            ("encoded", vec![("content-encoding", "gzip")]),
            (
                "no-transform",
                vec![("cache-control", "public, no-transform")],
            ),
            ("short", vec![("content-length", "99")]),
            ("image", vec![("content-type", "image/png")]),
            ("events", vec![("content-type", "text/event-stream")]),
            ("a part", vec![("content-range", "bytes 0-9/5000")]),
        ] {
            let mut h = head(&headers);
            assert_eq!(plan(&s, &req("gzip"), &mut h), None, "{name}");
        }
        let mut h = head(&[]);
        h.remove_header("content-type");
        assert_eq!(plan(&s, &req("gzip"), &mut h), None, "no type");
        let mut r = req("gzip");
        r.insert_header("range", "bytes=0-10").unwrap();
        let mut h = head(&[]);
        assert_eq!(plan(&s, &r, &mut h), None, "range");
        let mut h = head(&[]);
        h.set_status(206).unwrap();
        assert_eq!(plan(&s, &req("gzip"), &mut h), None, "206");
    }

    #[test]
    fn a_304_for_the_compressed_form_says_what_it_said() {
        let mut r = req("gzip");
        r.insert_header("if-none-match", "W/\"abc\"").unwrap();
        let mut h = ResponseHeader::build(304, None).unwrap();
        h.insert_header("etag", "\"abc\"").unwrap();
        assert_eq!(plan(&settings(), &r, &mut h), None);
        assert_eq!(h.headers["etag"], "W/\"abc\"");
        assert_eq!(h.headers["vary"], "accept-encoding");
        let mut r = req("gzip");
        r.insert_header("if-none-match", "\"abc\"").unwrap();
        let mut h = ResponseHeader::build(304, None).unwrap();
        h.insert_header("etag", "\"abc\"").unwrap();
        plan(&settings(), &r, &mut h);
        assert_eq!(h.headers["etag"], "\"abc\"");
    }

    #[test]
    fn a_level_of_zero_is_never_offered_and_types_take_wildcards() {
        let mut s = settings();
        s.levels = [0, 0, 6];
        let mut h = head(&[]);
        assert_eq!(
            plan(&s, &req("br, zstd, gzip;q=0.1"), &mut h),
            Some(Encoding::Gzip)
        );
        s.types = vec!["image/*".into()];
        let mut h = head(&[("content-type", "image/bmp")]);
        assert_eq!(plan(&s, &req("gzip"), &mut h), Some(Encoding::Gzip));
        let mut h = head(&[]);
        assert_eq!(plan(&s, &req("gzip"), &mut h), None);
    }
}
