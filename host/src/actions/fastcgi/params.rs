//! The CGI/1.1 variables sent with a request.

use std::borrow::Cow;
use std::path::Path;

use fastcgi_client::Params;
use http::header;

use super::script::Script;
use super::{CgiRequest, FastCgi};

impl FastCgi {
    /// The document root as the FastCGI server sees it.
    fn seen_root(&self) -> &Path {
        self.s.script_root.as_deref().unwrap_or(&self.s.root)
    }

    /// A file under the local root, as the FastCGI server sees it.
    pub(super) fn as_seen<'p>(&self, local: &'p Path) -> Cow<'p, Path> {
        match (&self.s.script_root, local.strip_prefix(&self.s.root)) {
            (Some(seen), Ok(rel)) => Cow::Owned(seen.join(rel)),
            _ => Cow::Borrowed(local),
        }
    }

    pub(super) fn params<'a>(&'a self, r: &'a CgiRequest<'a>, script: &'a Script) -> Params<'a> {
        let req = r.req;
        let uri = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut p = Params::default();
        // The CGI variables below and one per request header, without regrowth.
        p.reserve(24 + req.headers.keys_len() + self.s.params.len());
        let mut p = p
            .gateway_interface("CGI/1.1")
            .server_software(concat!("kavro/", env!("CARGO_PKG_VERSION")))
            .server_protocol(if r.http2 { "HTTP/2.0" } else { "HTTP/1.1" })
            .request_method(req.method.as_str())
            .script_filename(
                self.as_seen(&script.filename)
                    .to_string_lossy()
                    .into_owned(),
            )
            .script_name(script.name.as_str())
            .query_string(req.uri.query().unwrap_or(""))
            .request_uri(uri)
            .document_uri(script.name.as_str())
            .document_root(self.seen_root().to_string_lossy())
            .server_name(r.host)
            .custom("PATH_INFO", script.path_info.as_str())
            .custom("REDIRECT_STATUS", "200")
            .custom("REQUEST_ID", r.request_id);
        if !script.path_info.is_empty() {
            let translated = self
                .seen_root()
                .join(script.path_info.trim_start_matches('/'));
            p = p.custom("PATH_TRANSLATED", translated.to_string_lossy().into_owned());
        }
        if let Some(c) = r.client {
            p = p.remote_addr(c.ip().to_string()).remote_port(c.port());
        }
        if let Some(s) = r.server {
            p = p.server_addr(s.ip().to_string()).server_port(s.port());
        }
        if r.https {
            p = p.custom("HTTPS", "on").custom("REQUEST_SCHEME", "https");
        } else {
            p = p.custom("REQUEST_SCHEME", "http");
        }
        if let Some(ct) = req.headers.get(header::CONTENT_TYPE) {
            p = p.content_type(String::from_utf8_lossy(ct.as_bytes()).into_owned());
        }
        if !r.body.is_empty() || req.headers.contains_key(header::CONTENT_LENGTH) {
            p = p.content_length(r.body.len());
        }
        for name in req.headers.keys() {
            // Content-* travel as CONTENT_*; `Proxy` would become HTTP_PROXY,
            // which many HTTP clients obey (httpoxy).
            if name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH || name == "proxy" {
                continue;
            }
            let mut values = req.headers.get_all(name).iter();
            let first = values.next().map(|v| String::from_utf8_lossy(v.as_bytes()));
            let value = match values.next() {
                // One value, as nearly always: borrowed, not copied.
                None => first.unwrap_or_default(),
                Some(second) => {
                    let sep = if name == header::COOKIE { "; " } else { ", " };
                    let rest = std::iter::once(second).chain(values);
                    first
                        .into_iter()
                        .chain(rest.map(|v| String::from_utf8_lossy(v.as_bytes())))
                        .collect::<Vec<_>>()
                        .join(sep)
                        .into()
                }
            };
            let mut key = String::with_capacity(5 + name.as_str().len());
            key.push_str("HTTP_");
            key.extend(name.as_str().chars().map(|c| match c {
                '-' => '_',
                c => c.to_ascii_uppercase(),
            }));
            p = p.custom(key, value);
        }
        for (k, v) in &self.s.params {
            p = p.custom(k.as_str(), v.as_str());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use pingora_http::RequestHeader;

    use super::super::script::Script;
    use super::super::{test_settings, CgiRequest, FastCgi};

    #[test]
    fn request_headers_become_http_params() {
        let dir = std::env::temp_dir().join(format!("kavro-fcgi-params-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = FastCgi::new(test_settings(dir.clone()).validated().unwrap());
        let mut req = RequestHeader::build("GET", b"/a.php?q=1", None).unwrap();
        req.append_header("cookie", "a=1").unwrap();
        req.append_header("cookie", "b=2").unwrap();
        req.append_header("x-multi", "one").unwrap();
        req.append_header("x-multi", "two").unwrap();
        req.append_header("x-single-value", "only").unwrap();
        req.append_header("proxy", "http://evil").unwrap();
        let r = CgiRequest {
            req: &req,
            body: Bytes::new(),
            host: "example.test",
            client: None,
            server: None,
            https: false,
            http2: false,
            request_id: "id",
        };
        let script = Script {
            name: "/a.php".into(),
            path_info: String::new(),
            filename: dir.join("a.php"),
        };
        let p = f.params(&r, &script);
        let get = |k: &str| p.get(k).map(|v| v.to_string());
        assert_eq!(get("HTTP_COOKIE").as_deref(), Some("a=1; b=2"));
        assert_eq!(get("HTTP_X_MULTI").as_deref(), Some("one, two"));
        assert_eq!(get("HTTP_X_SINGLE_VALUE").as_deref(), Some("only"));
        assert_eq!(get("HTTP_PROXY"), None);
        assert_eq!(get("QUERY_STRING").as_deref(), Some("q=1"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
