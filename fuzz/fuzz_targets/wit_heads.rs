//! The request and response heads as plugins see and change them through
//! the WIT `request` / `response` handles (`plugin::call::Call`), and a
//! plugin's reply, forward headers and rewritten URI as the host takes them
//! back: arbitrary names, values and statuses give an error, never a panic.

#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use bytes::Bytes;
use kavro_host::actions::Body;
use kavro_host::config::Limits;
use kavro_host::fuzzing::{header_list, plugin_uri, reply_to_produced, Resource};
use kavro_host::plugin::bindings::types::{self, HostRequest, HostResponse};
use kavro_host::plugin::call::{Access, Call};
use libfuzzer_sys::fuzz_target;
use pingora_http::{RequestHeader, ResponseHeader};

#[derive(Arbitrary, Debug)]
enum Op {
    Method,
    Uri,
    Path,
    Query,
    Authority,
    RequestHeader(String),
    RequestHeaderAll(String),
    RequestHeaders,
    SetRequestHeader(String, String),
    AppendRequestHeader(String, String),
    RemoveRequestHeader(String),
    Status,
    ResponseHeader(String),
    ResponseHeaderAll(String),
    ResponseHeaders,
    SetResponseHeader(String, String),
    AppendResponseHeader(String, String),
    RemoveResponseHeader(String),
}

#[derive(Arbitrary, Debug)]
enum Directive {
    NoStore,
    TtlMs(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: Vec<u8>,
    target: Vec<u8>,
    request_headers: Vec<(Vec<u8>, Vec<u8>)>,
    status: u16,
    response_headers: Vec<(Vec<u8>, Vec<u8>)>,
    access: (bool, bool),
    max_headers: u8,
    ops: Vec<Op>,
    reply_status: u16,
    reply_headers: Vec<(String, String)>,
    reply_body: Vec<u8>,
    reply_cache: Option<Directive>,
    max_body: u16,
    uri: String,
}

fn req() -> Resource<types::Request> {
    Resource::new_borrow(0)
}

fn resp() -> Resource<types::Response> {
    Resource::new_borrow(0)
}

/// A header removed without an error is gone.
fn check_removed(result: Result<(), types::HostError>, read: Option<String>, name: &str) {
    if result.is_ok() {
        assert_eq!(read, None, "`{name}` removed but still there");
    }
}

fuzz_target!(|input: Input| {
    let limits = Limits {
        max_headers: input.max_headers.into(),
        ..Limits::default()
    };
    let mut call = Call::new(Arc::from("fuzz"), &limits);

    // The heads as Pingora hands them over.
    if let Ok(mut r) = RequestHeader::build(input.method.as_slice(), &input.target, None) {
        for (k, v) in &input.request_headers {
            let _ = r.append_header(Bytes::copy_from_slice(k), v.as_slice());
        }
        call.req = r;
    }
    if let Ok(mut r) = ResponseHeader::build(input.status, None) {
        for (k, v) in &input.response_headers {
            let _ = r.append_header(Bytes::copy_from_slice(k), v.as_slice());
        }
        call.resp = r;
    }
    call.access = Access {
        request_writable: input.access.0,
        response_writable: input.access.1,
        cache_choice: false,
    };

    for op in input.ops {
        match op {
            Op::Method => {
                let m = HostRequest::method(&mut call, req());
                assert!(!m.is_empty());
            }
            Op::Uri => {
                let _ = HostRequest::uri(&mut call, req());
            }
            Op::Path => {
                let _ = HostRequest::path(&mut call, req());
            }
            Op::Query => {
                let _ = HostRequest::query(&mut call, req());
            }
            Op::Authority => {
                let _ = HostRequest::authority(&mut call, req());
            }
            Op::RequestHeader(n) => {
                let _ = HostRequest::header(&mut call, req(), n);
            }
            Op::RequestHeaderAll(n) => {
                let _ = HostRequest::header_all(&mut call, req(), n);
            }
            Op::RequestHeaders => {
                let all = HostRequest::headers(&mut call, req());
                assert_eq!(all.len(), call.req.headers.len());
            }
            Op::SetRequestHeader(n, v) => {
                let r = HostRequest::set_header(&mut call, req(), n.clone(), v.clone());
                let read = HostRequest::header(&mut call, req(), n.clone());
                if r.is_ok() {
                    assert_eq!(read.as_deref(), Some(v.as_str()));
                }
            }
            Op::AppendRequestHeader(n, v) => {
                let r = HostRequest::append_header(&mut call, req(), n.clone(), v.clone());
                let read = HostRequest::header_all(&mut call, req(), n.clone());
                if r.is_ok() {
                    assert!(read.contains(&v), "`{n}`: {v:?} not in {read:?}");
                }
            }
            Op::RemoveRequestHeader(n) => {
                let r = HostRequest::remove_header(&mut call, req(), n.clone());
                let read = HostRequest::header(&mut call, req(), n.clone());
                check_removed(r, read, &n);
            }
            Op::Status => {
                let s = HostResponse::status(&mut call, resp());
                assert!((100..=999).contains(&s));
            }
            Op::ResponseHeader(n) => {
                let _ = HostResponse::header(&mut call, resp(), n);
            }
            Op::ResponseHeaderAll(n) => {
                let _ = HostResponse::header_all(&mut call, resp(), n);
            }
            Op::ResponseHeaders => {
                let all = HostResponse::headers(&mut call, resp());
                assert_eq!(all.len(), call.resp.headers.len());
            }
            Op::SetResponseHeader(n, v) => {
                let r = HostResponse::set_header(&mut call, resp(), n.clone(), v.clone());
                let read = HostResponse::header(&mut call, resp(), n.clone());
                if r.is_ok() {
                    assert_eq!(read.as_deref(), Some(v.as_str()));
                }
            }
            Op::AppendResponseHeader(n, v) => {
                let r = HostResponse::append_header(&mut call, resp(), n.clone(), v.clone());
                let read = HostResponse::header_all(&mut call, resp(), n.clone());
                if r.is_ok() {
                    assert!(read.contains(&v), "`{n}`: {v:?} not in {read:?}");
                }
            }
            Op::RemoveResponseHeader(n) => {
                let r = HostResponse::remove_header(&mut call, resp(), n.clone());
                let read = HostResponse::header(&mut call, resp(), n.clone());
                check_removed(r, read, &n);
            }
        }
    }

    // What a plugin hands back.
    let _ = header_list(input.reply_headers.clone());
    if let Ok(uri) = plugin_uri(&input.uri) {
        assert!(uri.path().starts_with('/'));
        call.req.set_uri(uri);
    }
    let body_len = input.reply_body.len();
    let reply = types::Reply {
        status: input.reply_status,
        headers: input.reply_headers,
        body: input.reply_body,
        cache: input.reply_cache.map(|d| match d {
            Directive::NoStore => types::CacheDirective::NoStore,
            Directive::TtlMs(ms) => types::CacheDirective::TtlMs(ms),
        }),
    };
    if let Ok(p) = reply_to_produced(reply, input.max_body.into()) {
        assert!(p.head.status.as_u16() >= 200);
        assert!(body_len <= input.max_body.into());
        let Body::Bytes(body) = &p.body else {
            panic!("a reply is a buffered body");
        };
        assert_eq!(body.len(), body_len);
        assert_eq!(
            p.head.headers["content-length"].as_bytes(),
            body_len.to_string().as_bytes()
        );
        assert!(!p.head.headers.contains_key("transfer-encoding"));
    }
});
