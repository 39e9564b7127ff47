//! The call in progress on an instance: the plugin it belongs to, the
//! request and response heads lent to it, what the phase may change, and
//! its deadline clock; and the `request` / `response` handles that read and
//! write the heads in place. During a phase call the pipeline swaps the live
//! heads into the store and back out afterwards, so a plugin copies only
//! what it asks for.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};
use wasmtime::component::Resource;

use super::bindings::types::{self, Header, HostError, HostRequest, HostResponse};
use super::slow_lane::CpuMeter;

/// Facts about the request that are not in its head.
#[derive(Debug)]
pub struct RequestInfo {
    pub id: String,
    pub client_ip: String,
    pub scheme: &'static str,
}

/// A finished request in a post batch: its heads and facts, behind the
/// batch's own `request` / `response` handles.
#[derive(Debug)]
pub struct Finished {
    pub seq: u64,
    pub req: RequestHeader,
    pub resp: ResponseHeader,
    pub info: Arc<RequestInfo>,
    pub done: types::Completion,
}

/// What a phase may change.
#[derive(Debug, Clone, Copy, Default)]
pub struct Access {
    pub request_writable: bool,
    pub response_writable: bool,
    /// Prime may choose the cache key or bypass the cache.
    pub cache_choice: bool,
}

pub struct Call {
    /// The plugin's name, for its log lines, metrics and errors.
    pub plugin: Arc<str>,
    pub req: RequestHeader,
    pub resp: ResponseHeader,
    pub info: Option<Arc<RequestInfo>>,
    pub access: Access,
    /// Engine tick at which the call has run out of time.
    pub deadline_tick: u64,
    /// Engine tick at which the call started.
    pub call_tick: u64,
    /// CPU time the call has used on the workers since its first tick.
    pub cpu: CpuMeter,
    /// CPU time a call may use on a worker before it moves to the slow lane.
    pub worker_cpu: Duration,
    /// Headers added during the call, bounded by `max_headers`.
    pub headers_added: usize,
    max_headers: usize,
    /// What the plugin reported through `log.fail` during the call.
    pub reported: Option<String>,
    /// A post batch's finished requests, behind handles 1..=n (handle 0 is
    /// the heads lent to every other call).
    pub batch: Vec<Finished>,
    /// In a batch: the failures the plugin reported, one a request.
    pub batch_reports: Vec<(u64, String)>,
    /// In a batch: the request whose failure the plugin's last host call
    /// reported (the Rust and C SDKs report, then trap: the batch stopped
    /// there).
    pub reported_last: Option<u64>,
    /// The batch's request the plugin read last (its handle; 0 none): its
    /// id goes with the plugin's log lines.
    current: u32,
    /// In a batch: the ticks each request may take, and the tick by which
    /// the whole batch must end.
    batch_clock: Option<(u64, u64)>,
}

impl Call {
    pub fn new(plugin: Arc<str>, limits: &crate::config::Limits) -> Call {
        Call {
            plugin,
            req: RequestHeader::build("GET", b"/", Some(0)).expect("static request"),
            resp: ResponseHeader::build(200, Some(0)).expect("static response"),
            info: None,
            access: Access::default(),
            deadline_tick: u64::MAX,
            call_tick: 0,
            cpu: Default::default(),
            worker_cpu: limits.worker_cpu,
            headers_added: 0,
            max_headers: limits.max_headers,
            reported: None,
            batch: Vec::new(),
            batch_reports: Vec::new(),
            reported_last: None,
            current: 0,
            batch_clock: None,
        }
    }

    /// What is left of the call's deadline.
    pub fn time_left(&self) -> Duration {
        let ticks = self.deadline_tick.saturating_sub(super::epoch::now_tick());
        super::epoch::TICK * ticks.min(u32::MAX as u64) as u32
    }

    /// How long a host call that waits on the network may take: four
    /// fifths of what is left, so the plugin keeps time to handle an error.
    pub fn io_budget(&self) -> Duration {
        let left = self.time_left();
        left - left / 5
    }

    /// The request's id, or "" outside a request; in a post batch, the id
    /// of the request the plugin read last.
    pub fn request_id(&self) -> &str {
        let info = match self.current {
            0 => self.info.as_ref(),
            n => self.batch.get(n as usize - 1).map(|f| &f.info),
        };
        info.map_or("", |i| i.id.as_str())
    }

    /// Hands a post batch to the store for one call, armed (see
    /// [`Instance::arm`](super::Instance)) with `per_request` for each of
    /// its requests: the first request's deadline is that far, and each
    /// request the plugin moves on to gets as long again, within the
    /// batch's total.
    pub fn lend_batch(&mut self, batch: Vec<Finished>, per_request: Duration) {
        let per = super::epoch::ticks_for(per_request);
        let end = self.call_tick + per * batch.len().max(1) as u64;
        self.deadline_tick = self.call_tick + per;
        self.batch_clock = Some((per, end));
        self.batch = batch;
        self.batch_reports.clear();
        self.reported_last = None;
        self.current = 0;
    }

    /// Takes the batch back after the call.
    pub fn take_batch(&mut self) -> Vec<Finished> {
        self.current = 0;
        self.batch_clock = None;
        std::mem::take(&mut self.batch)
    }

    /// Records a failure the plugin reported for request `seq` of the batch.
    pub fn report_in_batch(&mut self, seq: u64, message: String) {
        if !self.batch.iter().any(|f| f.seq == seq) {
            return;
        }
        self.reported_last = Some(seq);
        match self.batch_reports.iter_mut().find(|r| r.0 == seq) {
            Some(r) => r.1 = message,
            None => self.batch_reports.push((seq, message)),
        }
    }

    /// The plugin touched batch handle `rep`: a request it moves on to
    /// gets its own deadline, and a report before is no longer its last
    /// word.
    fn touched(&mut self, rep: u32) {
        self.reported_last = None;
        if rep != self.current {
            self.current = rep;
            self.restart_clock();
        }
    }

    fn restart_clock(&mut self) {
        if let Some((per, end)) = self.batch_clock {
            self.deadline_tick = (super::epoch::now_tick() + per).min(end);
        }
    }

    fn in_batch(&self, rep: u32) -> bool {
        rep != 0 && rep as usize <= self.batch.len()
    }

    /// A batch handle is dropped: the plugin is done with that request,
    /// and the next one's clock starts.
    fn dropped(&mut self, rep: u32) {
        if self.in_batch(rep) {
            self.reported_last = None;
            self.current = rep;
            self.restart_clock();
        }
    }

    /// The request a handle stands for, with its facts.
    fn request_at(&mut self, rep: u32) -> (&RequestHeader, Option<&Arc<RequestInfo>>) {
        if self.in_batch(rep) {
            self.touched(rep);
            let f = &self.batch[rep as usize - 1];
            return (&f.req, Some(&f.info));
        }
        (&self.req, self.info.as_ref())
    }

    /// The response a handle stands for.
    fn response_at(&mut self, rep: u32) -> &ResponseHeader {
        if self.in_batch(rep) {
            self.touched(rep);
            return &self.batch[rep as usize - 1].resp;
        }
        &self.resp
    }
}

fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), HostError> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| HostError::Invalid(format!("`{name}` is not a valid header name")))?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| HostError::Invalid(format!("invalid value for header `{name}`")))?;
    Ok((name, value))
}

fn read_only(what: &str) -> HostError {
    HostError::Invalid(format!(
        "the {what} cannot be changed here (this phase, or the head was already sent)"
    ))
}

fn one(map: &http::HeaderMap, name: &str) -> Option<String> {
    map.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn all(map: &http::HeaderMap, name: &str) -> Vec<String> {
    map.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

fn pairs(map: &http::HeaderMap) -> Vec<Header> {
    map.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Which head a plugin writes.
#[derive(Clone, Copy)]
enum Head {
    Request,
    Response,
}

/// How a header is written.
#[derive(Clone, Copy)]
enum Edit {
    /// In place of any of that name.
    Set,
    /// Beside them.
    Append,
    Remove,
}

impl Call {
    fn count_added(&mut self) -> Result<(), HostError> {
        self.headers_added += 1;
        if self.headers_added > self.max_headers {
            return Err(HostError::Invalid(format!(
                "more than {} headers added in one call",
                self.max_headers
            )));
        }
        Ok(())
    }

    /// Writes a header of the request or the response, if this phase may
    /// change that head; an added header counts against the plugin's limit.
    fn edit(&mut self, head: Head, edit: Edit, name: &str, value: &str) -> Result<(), HostError> {
        let (writable, what) = match head {
            Head::Request => (self.access.request_writable, "request"),
            Head::Response => (self.access.response_writable, "response"),
        };
        if !writable {
            return Err(read_only(what));
        }
        if let Edit::Remove = edit {
            let name = name.to_ascii_lowercase();
            let _ = match head {
                Head::Request => self.req.remove_header(name.as_str()),
                Head::Response => self.resp.remove_header(name.as_str()),
            };
            return Ok(());
        }
        let (n, v) = header_pair(name, value)?;
        self.count_added()?;
        let _ = match (head, edit) {
            (Head::Request, Edit::Set) => self.req.insert_header(n, v),
            (Head::Request, _) => self.req.append_header(n, v).map(drop),
            (Head::Response, Edit::Set) => self.resp.insert_header(n, v),
            (Head::Response, _) => self.resp.append_header(n, v).map(drop),
        };
        Ok(())
    }
}

impl types::Host for Call {}

impl HostRequest for Call {
    fn method(&mut self, r: Resource<types::Request>) -> String {
        self.request_at(r.rep()).0.method.as_str().to_string()
    }
    fn uri(&mut self, r: Resource<types::Request>) -> String {
        self.request_at(r.rep())
            .0
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string())
    }
    fn path(&mut self, r: Resource<types::Request>) -> String {
        self.request_at(r.rep()).0.uri.path().to_string()
    }
    fn query(&mut self, r: Resource<types::Request>) -> Option<String> {
        self.request_at(r.rep()).0.uri.query().map(str::to_string)
    }
    fn authority(&mut self, r: Resource<types::Request>) -> Option<String> {
        let req = self.request_at(r.rep()).0;
        one(&req.headers, "host").or_else(|| req.uri.authority().map(|a| a.as_str().to_string()))
    }
    fn scheme(&mut self, r: Resource<types::Request>) -> String {
        self.request_at(r.rep())
            .1
            .map_or("http", |i| i.scheme)
            .to_string()
    }
    fn client_ip(&mut self, r: Resource<types::Request>) -> String {
        self.request_at(r.rep())
            .1
            .map(|i| i.client_ip.clone())
            .unwrap_or_default()
    }
    fn id(&mut self, r: Resource<types::Request>) -> String {
        self.request_at(r.rep())
            .1
            .map(|i| i.id.clone())
            .unwrap_or_default()
    }
    fn header(&mut self, r: Resource<types::Request>, name: String) -> Option<String> {
        one(
            &self.request_at(r.rep()).0.headers,
            &name.to_ascii_lowercase(),
        )
    }
    fn header_all(&mut self, r: Resource<types::Request>, name: String) -> Vec<String> {
        all(
            &self.request_at(r.rep()).0.headers,
            &name.to_ascii_lowercase(),
        )
    }
    fn headers(&mut self, r: Resource<types::Request>) -> Vec<Header> {
        pairs(&self.request_at(r.rep()).0.headers)
    }
    fn set_header(
        &mut self,
        _: Resource<types::Request>,
        name: String,
        value: String,
    ) -> Result<(), HostError> {
        self.edit(Head::Request, Edit::Set, &name, &value)
    }
    fn append_header(
        &mut self,
        _: Resource<types::Request>,
        name: String,
        value: String,
    ) -> Result<(), HostError> {
        self.edit(Head::Request, Edit::Append, &name, &value)
    }
    fn remove_header(
        &mut self,
        _: Resource<types::Request>,
        name: String,
    ) -> Result<(), HostError> {
        self.edit(Head::Request, Edit::Remove, &name, "")
    }
    fn drop(&mut self, r: Resource<types::Request>) -> wasmtime::Result<()> {
        self.dropped(r.rep());
        Ok(())
    }
}

impl HostResponse for Call {
    fn status(&mut self, r: Resource<types::Response>) -> u16 {
        self.response_at(r.rep()).status.as_u16()
    }
    fn header(&mut self, r: Resource<types::Response>, name: String) -> Option<String> {
        one(
            &self.response_at(r.rep()).headers,
            &name.to_ascii_lowercase(),
        )
    }
    fn header_all(&mut self, r: Resource<types::Response>, name: String) -> Vec<String> {
        all(
            &self.response_at(r.rep()).headers,
            &name.to_ascii_lowercase(),
        )
    }
    fn headers(&mut self, r: Resource<types::Response>) -> Vec<Header> {
        pairs(&self.response_at(r.rep()).headers)
    }
    fn set_header(
        &mut self,
        _: Resource<types::Response>,
        name: String,
        value: String,
    ) -> Result<(), HostError> {
        self.edit(Head::Response, Edit::Set, &name, &value)
    }
    fn append_header(
        &mut self,
        _: Resource<types::Response>,
        name: String,
        value: String,
    ) -> Result<(), HostError> {
        self.edit(Head::Response, Edit::Append, &name, &value)
    }
    fn remove_header(
        &mut self,
        _: Resource<types::Response>,
        name: String,
    ) -> Result<(), HostError> {
        self.edit(Head::Response, Edit::Remove, &name, "")
    }
    fn set_status(&mut self, _: Resource<types::Response>, status: u16) -> Result<(), HostError> {
        if !self.access.response_writable {
            return Err(read_only("response"));
        }
        // A body's framing follows its status: neither side of the change
        // may be one without a body (1xx, 204, 205, 304) or a part of one (206).
        let bodied = |s: u16| (200..600).contains(&s) && !matches!(s, 204 | 205 | 206 | 304);
        let current = self.resp.status.as_u16();
        if !bodied(current) {
            return Err(HostError::Invalid(format!(
                "a {current} response keeps its status"
            )));
        }
        let status = http::StatusCode::from_u16(status)
            .ok()
            .filter(|s| bodied(s.as_u16()))
            .ok_or_else(|| {
                HostError::Invalid(format!(
                    "status {status} cannot be set: use 200-599, except 204, 205, 206 and 304"
                ))
            })?;
        let _ = self.resp.set_status(status);
        Ok(())
    }
    fn drop(&mut self, r: Resource<types::Response>) -> wasmtime::Result<()> {
        self.dropped(r.rep());
        Ok(())
    }
}
