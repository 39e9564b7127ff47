//! The `respond` (fixed response) and `redirect` actions.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora_http::{RequestHeader, ResponseHeader};

use super::{Body, Produced, SettingsError};

#[derive(Debug)]
pub struct Respond {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Respond {
    pub fn new(
        status: u16,
        headers: &BTreeMap<String, String>,
        body: String,
    ) -> Result<Self, SettingsError> {
        let status = StatusCode::from_u16(status).map_err(|_| SettingsError::Status(status))?;
        let headers = headers
            .iter()
            .map(|(k, v)| {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| SettingsError::HeaderName(k.clone()))?;
                let value =
                    HeaderValue::from_str(v).map_err(|_| SettingsError::HeaderValue(k.clone()))?;
                Ok((name, value))
            })
            .collect::<Result<_, SettingsError>>()?;
        Ok(Respond {
            status,
            headers,
            body: Bytes::from(body),
        })
    }

    pub fn produce(&self) -> Produced {
        let mut head = ResponseHeader::build(self.status, Some(self.headers.len() + 1))
            .expect("status validated");
        for (k, v) in &self.headers {
            let _ = head.append_header(k.clone(), v.clone());
        }
        let _ = head.insert_header(http::header::CONTENT_LENGTH, self.body.len().to_string());
        Produced {
            head: Box::new(head),
            body: Body::Bytes(self.body.clone()),
            identity: None,
        }
    }
}

#[derive(Debug)]
pub struct Redirect {
    status: StatusCode,
    to: String,
}

impl Redirect {
    pub fn new(status: u16, to: String) -> Result<Self, SettingsError> {
        if !matches!(status, 301 | 302 | 303 | 307 | 308) {
            return Err(SettingsError::NotARedirect(status));
        }
        Ok(Redirect {
            status: StatusCode::from_u16(status).expect("checked"),
            to,
        })
    }

    pub fn produce(&self, req: &RequestHeader, host: &str) -> Produced {
        let uri = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let location = self
            .to
            .replace("{path}", req.uri.path())
            .replace("{uri}", uri)
            .replace("{host}", host);
        match HeaderValue::from_str(&location) {
            Ok(v) => {
                let mut head = ResponseHeader::build(self.status, Some(2)).expect("valid");
                let _ = head.insert_header(http::header::LOCATION, v);
                let _ = head.insert_header(http::header::CONTENT_LENGTH, "0");
                Produced {
                    head: Box::new(head),
                    body: Body::Empty,
                    identity: None,
                }
            }
            Err(_) => Produced::text(400, "bad request: cannot redirect this URI\n"),
        }
    }
}
