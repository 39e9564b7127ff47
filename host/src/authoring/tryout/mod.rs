//! `kavro-host plugin try`: one request through a plugin's phases, without
//! a server, in the order and under the rules the host applies (deadline,
//! limits, failure policy), printing what each phase did: its outcome, the
//! headers it set or removed, the body it produced, its log lines and KV
//! writes, and how long the call took.

mod capture;
mod report;

use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::actions::{Body, Produced};
use crate::cli::TryArgs;
use crate::config::{Config, FailurePolicy};
use crate::pipeline::phases::{
    failed_closed, header_list, plugin_uri, presented, reply_to_produced,
};
use crate::plugin::artifacts::Urgency;
use crate::plugin::bindings::types::{CacheDirective, Completion};
use crate::plugin::bindings::{prepare, prime};
use crate::plugin::caps::cache::CacheChoice;
use crate::plugin::caps::Shared;
use crate::plugin::engine::Runtime;
use crate::plugin::loaded::NeedsError;
use crate::plugin::{Failure, Instance, Phase, Phases, Plugin, RequestInfo};

/// Why a try could not start: the message, and what to do about it.
struct Refusal {
    message: String,
    hint: String,
}

fn refuse(message: impl Display, hint: impl Display) -> Refusal {
    Refusal {
        message: message.to_string(),
        hint: hint.to_string(),
    }
}

pub fn run(args: &TryArgs) -> i32 {
    // A report piped into `head` ends quietly, as other command-line tools do.
    // SAFETY: sets the disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let lines = capture::install();
    crate::tls::install_crypto();
    let Some(rt) = crate::server::current_thread_runtime() else {
        return 2;
    };
    rt.block_on(async {
        match Session::open(args).await {
            Ok(session) => session.run(args, lines).await,
            Err(r) => {
                eprintln!("error: {}\n  hint: {}", r.message, r.hint);
                2
            }
        }
    })
}

/// A loaded plugin, the request to try, and the phases to run.
struct Session {
    plugin: Plugin,
    shared: Shared,
    run: Phases,
    req: RequestHeader,
    /// The response the route gives when no phase answers.
    route_response: Produced,
    /// The largest body present runs on (the server's default).
    present_max: usize,
}

/// The route names a settings file beside the plugin lists: a try has no
/// routes, so each is taken as known.
fn routes_named(file: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(file.with_extension("toml")).unwrap_or_default();
    let listed = toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|t| t.get("routes").and_then(|r| r.as_array()).cloned())
        .unwrap_or_default();
    listed
        .iter()
        .filter_map(|r| r.as_str())
        .enumerate()
        .map(|(i, r)| (r.to_string(), i))
        .collect()
}

/// `name: value`, as curl takes it.
fn header_arg(arg: &str) -> Result<(HeaderName, HeaderValue), Refusal> {
    let hint = "write headers as --header 'name: value'";
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| refuse(format!("`{arg}` is not a header"), hint))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| refuse(format!("`{}` is not a header name", name.trim()), hint))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| refuse(format!("the value of `{name}` is not a header value"), hint))?;
    Ok((name, value))
}

fn request(args: &TryArgs) -> Result<RequestHeader, Refusal> {
    let method = Method::from_bytes(args.method.as_bytes()).map_err(|_| {
        refuse(
            format!("`{}` is not a method", args.method),
            "e.g. --method POST",
        )
    })?;
    let uri = args
        .path
        .parse::<http::Uri>()
        .ok()
        .filter(|u| u.path().starts_with('/') && u.scheme().is_none());
    if uri.is_none() {
        return Err(refuse(
            format!("`{}` is not a path", args.path),
            "give a path and query, e.g. --path '/search?q=kavro'",
        ));
    }
    let mut req = RequestHeader::build(method, args.path.as_bytes(), None)
        .map_err(|e| refuse(format!("cannot build the request: {e}"), "check --path"))?;
    for h in &args.headers {
        let (name, value) = header_arg(h)?;
        let _ = req.append_header(name, value);
    }
    crate::pipeline::request_id(&mut req);
    if !req.headers.contains_key(http::header::HOST) {
        let _ = req.insert_header(http::header::HOST, "localhost");
    }
    if let Some(body) = &args.body {
        let _ = req.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
    }
    Ok(req)
}

fn route_response(args: &TryArgs) -> Result<Produced, Refusal> {
    let status = StatusCode::from_u16(args.status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .ok_or_else(|| {
            refuse(
                format!("{} is not a final status", args.status),
                "e.g. --status 404",
            )
        })?;
    let mut head = ResponseHeader::build(status, None).expect("valid status");
    let content_type = HeaderValue::from_str(&args.content_type).map_err(|_| {
        refuse(
            format!("`{}` is not a content type", args.content_type),
            "e.g. --content-type text/plain",
        )
    })?;
    let _ = head.insert_header(http::header::CONTENT_TYPE, content_type);
    let body = Bytes::from(args.response_body.clone());
    let _ = head.insert_header(http::header::CONTENT_LENGTH, body.len().to_string());
    Ok(Produced {
        head: Box::new(head),
        body: Body::Bytes(body),
        identity: None,
    })
}

impl Session {
    async fn open(args: &TryArgs) -> Result<Session, Refusal> {
        let file = args.plugin.as_path();
        let bytes = std::fs::read(file).map_err(|e| {
            refuse(
                format!("cannot read {}: {e}", file.display()),
                "give the path of a built plugin, e.g. hello.wasm",
            )
        })?;
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let req = request(args)?;
        let route_response = route_response(args)?;

        let mut settings = match crate::plugin::registry::sidecar(file, &routes_named(file)) {
            Ok(s) => s.unwrap_or_default(),
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
                return Err(refuse(
                    format!("its settings are refused:\n{}", text.join("\n")),
                    format!("fix {name}.toml beside the plugin, or move it away"),
                ));
            }
        };
        for kv in &args.values {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                refuse(
                    format!("`{kv}` is not a config value"),
                    "write them as --config key=value (a try reads no config file: the plugin runs alone)",
                )
            })?;
            settings.values.insert(k.to_string(), v.to_string());
        }
        let config = Config::load(None).map_err(|e| refuse(e, "this is a bug in kavro-host"))?;
        crate::plugin::registry::settle(&mut settings, &config);
        let shared = Shared::new(&config);

        let runtime = Runtime::get().map_err(|e| {
            refuse(
                format!("cannot start wasmtime: {e:#}"),
                "check the machine's memory limits (ulimit -v)",
            )
        })?;
        let not_plugin = format!(
            "a Kavro plugin is a wasm component built against this host's wit/ ({}@{}) with an SDK's build command (see sdk/)",
            crate::plugin::bindings::PACKAGE,
            crate::plugin::bindings::VERSION
        );
        let cache = args.cache.dir();
        let compiled = Plugin::compile(&runtime, &bytes, cache.as_deref(), Urgency::Start)
            .map_err(|e| refuse(format!("{}: {e:#}", file.display()), &not_plugin))?;
        let plugin = Plugin::link(
            &runtime,
            &name,
            file,
            compiled,
            settings,
            &HashMap::new(),
            &shared,
        )
        .await
        .map_err(|e| {
            let hint = match e.downcast_ref::<NeedsError>() {
                Some(NeedsError::NotGranted { .. }) => format!(
                    "the plugin's settings are {name}.toml beside it, e.g. capabilities = [\"kv\"]"
                ),
                Some(NeedsError::Unknown { .. }) => {
                    "build it against this host's wit/ (kavro:plugin)".to_string()
                }
                None => not_plugin.clone(),
            };
            refuse(format!("{} is refused: {e:#}", file.display()), hint)
        })?;

        let run = match args.phases.as_slice() {
            [] => plugin.phases,
            asked => {
                let mut run = Phases::default();
                for name in asked.iter().filter(|n| !n.trim().is_empty()) {
                    let phase: Phase = name.parse().map_err(|e: String| {
                        refuse(e, "--phases takes the phases to run, comma-separated")
                    })?;
                    if !plugin.phases[phase] {
                        return Err(refuse(
                            format!(
                                "{} has no {phase} phase: it exports {}",
                                file.display(),
                                plugin.phases.names().join(", ")
                            ),
                            "leave out --phases to run every phase it exports",
                        ));
                    }
                    run[phase] = true;
                }
                run
            }
        };
        Ok(Session {
            plugin,
            shared,
            run,
            req,
            route_response,
            present_max: config.present_max_bytes,
        })
    }

    async fn run(self, args: &TryArgs, lines: capture::Lines) -> i32 {
        let plugin = &self.plugin;
        let m = &plugin.manifest;
        println!(
            "plugin    {} {} ({})",
            m.name,
            m.version,
            args.plugin.display()
        );
        println!("exports   {}", plugin.phases.names().join(", "));
        let granted: Vec<&str> = crate::plugin::caps::Capability::ALL
            .iter()
            .filter(|c| !c.always() && c.granted(&plugin.settings))
            .map(|c| c.name())
            .collect();
        if !granted.is_empty() {
            println!("granted   {}", granted.join(", "));
        }
        println!("request   {} {}", self.req.method, self.req.uri);
        let request_id = self
            .req
            .headers
            .get("x-request-id")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let mut inst = match plugin.checkout().await {
            Ok(inst) => inst,
            Err(f) => {
                // As the host does: the plugin's policy decides the response.
                println!("instance  FAILED, {}", f.kind.as_str());
                for l in report::detail_lines(&f.detail) {
                    println!("  {l}");
                }
                let response = match plugin.settings.failure {
                    FailurePolicy::FailOpen => {
                        println!("          fail-open: the host goes on without the plugin");
                        self.route_response
                    }
                    FailurePolicy::FailClosed => {
                        println!("          fail-closed: the host answers 500");
                        failed_closed(&plugin.name, &request_id)
                    }
                };
                print_response(&response);
                return 1;
            }
        };
        let info = Arc::new(RequestInfo {
            id: request_id.clone(),
            client_ip: "127.0.0.1".into(),
            scheme: "http",
        });
        inst.set_request_info(Some(info.clone()));
        let mut walk = Walk {
            plugin,
            shared: &self.shared,
            lines,
            inst,
            run: self.run,
            failed: false,
            any_failed: false,
            seq: 1,
            started: Instant::now(),
        };
        let response = walk
            .request(self.req, self.route_response, &request_id, self.present_max)
            .await;
        let failed = walk.any_failed;
        plugin.give_back(walk.inst);
        print_response(&response);
        i32::from(failed)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn print_response(p: &Produced) {
    println!();
    println!(
        "response  {} {}",
        p.head.status.as_u16(),
        p.head.status.canonical_reason().unwrap_or("")
    );
    for (k, v) in p.head.headers.iter() {
        println!("  {k}: {}", String::from_utf8_lossy(v.as_bytes()));
    }
    if let Body::Bytes(b) = &p.body {
        const SHOWN: usize = 4096;
        println!();
        print!("{}", String::from_utf8_lossy(&b[..b.len().min(SHOWN)]));
        if b.len() > SHOWN {
            println!("\n… ({} bytes in all)", b.len());
        } else if !b.ends_with(b"\n") {
            println!();
        }
    }
}

/// The request's way through the plugin's phases.
struct Walk<'a> {
    plugin: &'a Plugin,
    shared: &'a Shared,
    lines: capture::Lines,
    inst: Instance,
    run: Phases,
    /// The plugin failed in this request: the host leaves it out of the rest.
    failed: bool,
    any_failed: bool,
    seq: u64,
    started: Instant,
}

/// What a phase returned, as the report shows it.
type Shown<T> = Result<(T, String), Failure>;

impl Walk<'_> {
    /// Whether `phase` runs; says why not when the plugin exports it.
    fn runs(&self, phase: Phase) -> bool {
        if !self.run[phase] {
            return false;
        }
        if self.failed {
            println!(
                "{:<9} skipped: the plugin failed earlier in this request",
                phase.name()
            );
            return false;
        }
        true
    }

    /// Calls a phase and prints what it did; `None` if it failed.
    async fn phase<T, F>(
        &mut self,
        phase: Phase,
        req: &mut RequestHeader,
        resp: &mut ResponseHeader,
        call: F,
    ) -> Option<T>
    where
        F: AsyncFnOnce(&mut Instance, &mut RequestHeader, &mut ResponseHeader) -> Shown<T>,
    {
        let kv = &self.shared.kv;
        let kv_before = kv.entries_of(&self.plugin.name);
        let (req_before, resp_before) = (req.headers.clone(), resp.headers.clone());
        let started = Instant::now();
        let result = call(&mut self.inst, req, resp).await;
        let took = started.elapsed();
        let out = match result {
            Ok((value, outcome)) => {
                let (first, rest) = outcome.split_once('\n').unwrap_or((&outcome, ""));
                println!("{:<9} {first}  ({})", phase.name(), ms(took));
                if !rest.is_empty() {
                    println!("{rest}");
                }
                Some(value)
            }
            Err(f) => {
                println!(
                    "{:<9} FAILED, {} after {}",
                    phase.name(),
                    f.kind.as_str(),
                    ms(took)
                );
                for l in report::detail_lines(&f.detail) {
                    println!("  {l}");
                }
                self.failed = true;
                self.any_failed = true;
                None
            }
        };
        let mut details = report::header_changes("request", &req_before, &req.headers);
        details.extend(report::header_changes(
            "response",
            &resp_before,
            &resp.headers,
        ));
        details.extend(report::kv_changes(
            &kv_before,
            &kv.entries_of(&self.plugin.name),
        ));
        details.extend(
            self.lines
                .take()
                .into_iter()
                .map(|l| format!("log      {l}")),
        );
        for d in details {
            println!("  {d}");
        }
        out
    }

    /// The plugin's failure policy, applied to the response: fail-closed
    /// answers 500, fail-open goes on without the plugin.
    fn policy(&self, request_id: &str) -> Option<Produced> {
        match self.plugin.settings.failure {
            FailurePolicy::FailOpen => {
                println!("          fail-open: the host goes on without the plugin");
                None
            }
            FailurePolicy::FailClosed => {
                println!("          fail-closed: the host answers 500");
                Some(failed_closed(&self.plugin.name, request_id))
            }
        }
    }

    fn body_limit(&self) -> usize {
        self.plugin
            .settings
            .limits
            .max_body_bytes
            .unwrap_or(usize::MAX)
    }

    async fn request(
        &mut self,
        mut req: RequestHeader,
        route: Produced,
        request_id: &str,
        present_max: usize,
    ) -> Produced {
        let deadline = self.plugin.settings.limits.deadline;
        let seq = self.seq;
        let limit = self.body_limit();
        // A response head for the phases that see none yet.
        let mut no_resp = ResponseHeader::build(200, Some(0)).expect("static response");
        let mut answered: Option<Produced> = None;
        let mut upstream = None;

        if self.runs(Phase::Prime) {
            let r = self
                .phase(
                    Phase::Prime,
                    &mut req,
                    &mut no_resp,
                    async |inst, req, _| {
                        let (outcome, choice) = inst.prime(seq, req, deadline).await?;
                        let cache = match choice {
                            Some(CacheChoice::Key(k)) => format!(", cache key `{k}`"),
                            Some(CacheChoice::Bypass) => ", cache bypassed".to_string(),
                            None => String::new(),
                        };
                        Ok(match outcome {
                            prime::Outcome::Continue => (None, format!("continue{cache}")),
                            prime::Outcome::Rewrite(uri) => {
                                req.set_uri(plugin_uri(&uri, "rewrite")?);
                                (None, format!("rewrite to {uri}{cache}"))
                            }
                            prime::Outcome::Respond(reply) => {
                                let status = reply.status;
                                let p = reply_to_produced(reply, limit)?;
                                (Some(p), format!("respond {status}{cache}"))
                            }
                        })
                    },
                )
                .await;
            match r {
                Some(p) => answered = p,
                None => answered = self.policy(request_id),
            }
        }

        if answered.is_none() && self.runs(Phase::Prepare) {
            let r = self
                .phase(Phase::Prepare, &mut req, &mut no_resp, async |inst, req, _| {
                    Ok(match inst.prepare(seq, req, deadline).await? {
                        prepare::Outcome::Decline => {
                            (Prepared::Declined, "decline: the route answers".to_string())
                        }
                        prepare::Outcome::Respond(reply) => {
                            let status = reply.status;
                            let cache = match reply.cache {
                                Some(CacheDirective::NoStore) => ", cache: no-store".to_string(),
                                Some(CacheDirective::TtlMs(ms)) => format!(", cache: {ms} ms"),
                                None => String::new(),
                            };
                            let p = reply_to_produced(reply, limit)?;
                            (Prepared::Answered(p), format!("respond {status}{cache}"))
                        }
                        prepare::Outcome::Forward(fwd) => {
                            if let Some(uri) = &fwd.uri {
                                plugin_uri(uri, "forward")?;
                            }
                            let mut text = format!("forward to upstream `{}`", fwd.upstream);
                            if let Some(uri) = &fwd.uri {
                                text.push_str(&format!(" as {uri}"));
                            }
                            for (k, v) in header_list(fwd.headers)? {
                                text.push_str(&format!(
                                    "\n  upstream header  {k}: {}",
                                    String::from_utf8_lossy(v.as_bytes())
                                ));
                            }
                            text.push_str(
                                "\n  (no upstreams here: the route's response stands in for the upstream's)",
                            );
                            (Prepared::Forwarded(fwd.upstream), text)
                        }
                    })
                })
                .await;
            match r {
                Some(Prepared::Answered(p)) => answered = Some(p),
                Some(Prepared::Forwarded(to)) => upstream = Some(to),
                Some(Prepared::Declined) => {}
                None => answered = self.policy(request_id),
            }
        }

        let mut response = answered.unwrap_or(route);
        let _ = response
            .head
            .insert_header("x-request-id", request_id.to_string());
        // A proxied head goes to the client before its body is whole: the
        // host runs package first, and present may no longer change the head.
        let proxied = upstream.is_some();
        if proxied {
            println!("          (proxied: the head is sent before the body, so package runs before present)");
            self.package(&mut req, &mut response, request_id).await;
        }
        let body = match &response.body {
            Body::Bytes(b) if response.head.status.as_u16() >= 200 && b.len() <= present_max => {
                Some(b.clone())
            }
            _ => None,
        };
        if let Some(body) = body.filter(|_| self.runs(Phase::Present)) {
            let head_writable = !proxied;
            let r = self
                .phase(
                    Phase::Present,
                    &mut req,
                    &mut response.head,
                    async |inst, req, resp| {
                        let outcome = inst
                            .present(seq, req, resp, &body, &[], head_writable, deadline)
                            .await?;
                        let body = presented(outcome, limit)?;
                        let text = match &body {
                            None => "keep the body".to_string(),
                            Some(b) => format!("replace the body ({} bytes)", b.len()),
                        };
                        Ok((body, text))
                    },
                )
                .await;
            match r {
                Some(Some(b)) => {
                    let _ = response
                        .head
                        .insert_header(http::header::CONTENT_LENGTH, b.len().to_string());
                    response.body = Body::Bytes(b);
                }
                Some(None) => {}
                None => {
                    if let Some(p) = self.policy(request_id) {
                        response = p;
                    }
                }
            }
        }
        if !proxied {
            self.package(&mut req, &mut response, request_id).await;
        }

        if self.runs(Phase::Post) {
            let done = Completion {
                status: response.head.status.as_u16(),
                duration_us: self.started.elapsed().as_micros() as u64,
                bytes_sent: match &response.body {
                    Body::Bytes(b) => b.len() as u64,
                    _ => 0,
                },
                upstream,
                error: None,
            };
            let mut head = (*response.head).clone();
            let r = self
                .phase(Phase::Post, &mut req, &mut head, async |inst, req, resp| {
                    inst.post(seq, req, resp, &done, deadline).await?;
                    Ok(((), "done".to_string()))
                })
                .await;
            if r.is_none() {
                println!("          (post runs after the response: the response stands)");
            }
        }
        response
    }

    /// Package on the response's head; a fail-closed failure replaces the response.
    async fn package(
        &mut self,
        req: &mut RequestHeader,
        response: &mut Produced,
        request_id: &str,
    ) {
        if !self.runs(Phase::Package) {
            return;
        }
        let deadline = self.plugin.settings.limits.deadline;
        let seq = self.seq;
        let r = self
            .phase(
                Phase::Package,
                req,
                &mut response.head,
                async |inst, req, resp| {
                    inst.package(seq, req, resp, deadline).await?;
                    Ok(((), "done".to_string()))
                },
            )
            .await;
        if r.is_none() {
            if let Some(mut p) = self.policy(request_id) {
                let _ = p.head.insert_header("x-request-id", request_id.to_string());
                *response = p;
            }
        }
    }
}

/// What prepare left for the rest of the request.
enum Prepared {
    Declined,
    Answered(Produced),
    /// To this upstream, which a try stands in for with the route's response.
    Forwarded(String),
}
