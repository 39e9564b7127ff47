//! The FastCGI response parser: arbitrary bytes as a script's stdout (CGI
//! headers, a blank line, the body) become a response or are refused.

#![no_main]

use bytes::Bytes;
use kavro_host::actions::fastcgi::parse_response;
use kavro_host::actions::Body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(p) = parse_response(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Body::Bytes(body) = &p.body else {
        panic!("a FastCGI response is always a buffered body");
    };
    assert!(body.len() <= data.len());
    assert!(data.ends_with(&body[..]));
    // Framing is the host's: one Content-Length, the body's.
    let lengths: Vec<_> = p.head.headers.get_all("content-length").iter().collect();
    assert_eq!(lengths.len(), 1);
    assert_eq!(lengths[0].as_bytes(), body.len().to_string().as_bytes());
    assert!(!p.head.headers.contains_key("transfer-encoding"));
    assert!(!p.head.headers.contains_key("connection"));
    assert!(!p.head.headers.contains_key("status"));
    // A final response: a 1xx would leave the client waiting for one.
    assert!((200..=999).contains(&p.head.status.as_u16()));
});
