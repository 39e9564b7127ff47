//! Write Kavro plugins in Rust.
//!
//! Enable the phases your plugin implements as features of this crate
//! (`features = ["prime", "package"]`), implement [`Plugin`] and the
//! matching phase traits, and call [`export!`]:
//!
//! ```ignore
//! use kavro_sdk::{export, Plugin, Package, Request, Response};
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     type State = ();
//!     fn manifest(&self) -> kavro_sdk::Manifest {
//!         kavro_sdk::Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
//!     }
//! }
//!
//! impl Package for Hello {
//!     fn on_response(&self, _: &mut (), _req: &Request, resp: &Response) {
//!         let _ = resp.set_header("x-hello", "world");
//!     }
//! }
//!
//! export!(Hello: package);
//! ```
//!
//! Per-request state: `Plugin::State` starts as `Default` for every request
//! and lives through all of that request's phases, post included. The
//! plugin value itself (`&self`) lives as long as the instance, across
//! requests. A panic's message and location reach the host's log and
//! `GET /plugins`.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "kavro:plugin/base",
        pub_export_macro: true,
        export_macro_name: "export_base",
        default_bindings_module: "kavro_sdk::bindings",
        generate_all,
    });
}

macro_rules! phase_bindings {
    ($feature:literal, $module:ident, $world:literal, $macro_name:literal) => {
        #[cfg(feature = $feature)]
        #[doc(hidden)]
        pub mod $module {
            wit_bindgen::generate!({
                path: "../../wit",
                world: $world,
                pub_export_macro: true,
                export_macro_name: $macro_name,
                with: {
                    "kavro:plugin/types@0.2.0": crate::bindings::kavro::plugin::types,
                },
            });
        }
    };
}

phase_bindings!(
    "prime",
    prime_bindings,
    "kavro:plugin/prime-phase",
    "export_prime"
);
phase_bindings!(
    "prepare",
    prepare_bindings,
    "kavro:plugin/prepare-phase",
    "export_prepare"
);
phase_bindings!(
    "present",
    present_bindings,
    "kavro:plugin/present-phase",
    "export_present"
);
phase_bindings!(
    "package",
    package_bindings,
    "kavro:plugin/package-phase",
    "export_package"
);
phase_bindings!(
    "post",
    post_bindings,
    "kavro:plugin/post-phase",
    "export_post"
);

use bindings::kavro::plugin::types;

pub use types::{CacheDirective, Completion, Forward, HostError, Level, Reply, Request, Response};

/// What a plugin says about itself; the host checks `capabilities`
/// against what the operator granted.
pub use types::Manifest;

impl Manifest {
    pub fn new(name: &str, version: &str) -> Manifest {
        Manifest {
            name: name.to_string(),
            version: version.to_string(),
            capabilities: Vec::new(),
            directives: Vec::new(),
        }
    }

    /// Declares a capability the plugin needs ("kv", "metrics").
    pub fn needs(mut self, capability: &str) -> Manifest {
        self.capabilities.push(capability.to_string());
        self
    }

    /// Declares a `!>` file directive the plugin answers ("tmpl"). A plugin
    /// that answers any runs in present only where a file names it, and
    /// gets [`Present::on_directive`].
    pub fn answers(mut self, directive: &str) -> Manifest {
        self.directives.push(directive.to_string());
        self
    }
}

/// A `!>` directive that named the plugin, from a static file's first line
/// (`!> tmpl header.html &> nonce`: two directives, `tmpl` with one
/// argument and `nonce` with none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
}

impl Directive {
    /// What the host passes to present: the name first, then the
    /// arguments; nothing for an ordinary present call.
    pub fn from_args(mut args: Vec<String>) -> Option<Directive> {
        if args.is_empty() {
            return None;
        }
        let name = args.remove(0);
        Some(Directive { name, args })
    }
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cache: None,
        }
    }

    /// From prepare, on a route that caches: store this reply for `ttl`.
    pub fn cache_for(mut self, ttl: std::time::Duration) -> Reply {
        self.cache = Some(CacheDirective::TtlMs(ttl.as_millis() as u64));
        self
    }

    /// From prepare, on a route that caches: never store this reply.
    pub fn no_store(mut self) -> Reply {
        self.cache = Some(CacheDirective::NoStore);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::new(status).header("location", location)
    }
}

impl Forward {
    /// Forward to a declared upstream unchanged.
    pub fn to(upstream: &str) -> Forward {
        Forward {
            upstream: upstream.to_string(),
            uri: None,
            headers: Vec::new(),
        }
    }

    pub fn uri(mut self, uri: &str) -> Forward {
        self.uri = Some(uri.to_string());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Forward {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// What prime decides.
pub enum PrimeOutcome {
    Continue,
    /// A new path and query; routing sees it.
    Rewrite(String),
    Respond(Reply),
}

/// What prepare decides.
pub enum PrepareOutcome {
    Respond(Reply),
    Forward(Forward),
    /// Let the route's own action (or the next plugin) answer.
    Decline,
}

/// What present decides about the body.
pub enum PresentOutcome {
    Keep,
    Replace(Vec<u8>),
}

/// Every plugin implements this.
pub trait Plugin: Default + 'static {
    /// Per-request state; a fresh `Default` for every request.
    type State: Default + 'static;
    fn manifest(&self) -> Manifest;
}

pub trait Prime: Plugin {
    fn on_request(&self, state: &mut Self::State, req: &Request) -> PrimeOutcome;
}

pub trait Prepare: Plugin {
    fn on_prepare(&self, state: &mut Self::State, req: &Request) -> PrepareOutcome;
}

pub trait Present: Plugin {
    /// Called with every buffered body of the plugin's routes (unless it
    /// answers directives); by default, keeps it.
    fn on_body(
        &self,
        state: &mut Self::State,
        req: &Request,
        resp: &Response,
        body: Vec<u8>,
    ) -> PresentOutcome {
        let _ = (state, req, resp, body);
        PresentOutcome::Keep
    }

    /// Called instead of [`Present::on_body`] when a static file's `!>`
    /// line names a directive the plugin answers (see
    /// [`Manifest::answers`]); by default, `on_body`.
    fn on_directive(
        &self,
        state: &mut Self::State,
        req: &Request,
        resp: &Response,
        body: Vec<u8>,
        directive: &Directive,
    ) -> PresentOutcome {
        let _ = directive;
        self.on_body(state, req, resp, body)
    }
}

pub trait Package: Plugin {
    fn on_response(&self, state: &mut Self::State, req: &Request, resp: &Response);
}

pub trait Post: Plugin {
    /// Called once per finished request, in order, even when the host hands
    /// several over in one call; `state` is that request's.
    fn on_complete(
        &self,
        state: &mut Self::State,
        req: &Request,
        resp: &Response,
        done: &Completion,
    );
}

/// The host's log; always available.
pub mod log {
    use super::bindings::kavro::plugin::log::log;
    use super::Level;

    pub fn debug(msg: &str) {
        log(Level::Debug, msg)
    }
    pub fn info(msg: &str) {
        log(Level::Info, msg)
    }
    pub fn warn(msg: &str) {
        log(Level::Warn, msg)
    }
    pub fn error(msg: &str) {
        log(Level::Error, msg)
    }
}

/// The plugin's own settings from the host config.
pub mod config {
    pub use super::bindings::kavro::plugin::config::{entries, get};

    /// A value parsed as `T`, if present and parseable.
    pub fn parse<T: std::str::FromStr>(key: &str) -> Option<T> {
        get(key).and_then(|v| v.parse().ok())
    }
}

/// The host's key-value store (capability "kv"), shared by all instances
/// of this plugin and kept across hot-swaps.
pub mod kv {
    pub use super::bindings::kavro::plugin::kv::{delete, get, increment, set};
}

/// The realtime hub's groups (capability "realtime"): [`publish`] sends a
/// text message to groups (`/room`) and client ids, each client once, and
/// returns the clients reached; [`group_size`] counts a group's clients.
pub mod realtime {
    pub use super::bindings::kavro::plugin::realtime::{group_size, publish};
}

/// The host's response cache (capability "cache").
///
/// In prime, [`set_key`] and [`bypass`] decide how this request uses the
/// cache; [`purge`] and [`purge_prefix`] work in any phase.
pub mod cache {
    pub use super::bindings::kavro::plugin::cache::{bypass, purge, purge_prefix, set_key};
}

/// Requests to upstreams declared in the host's config (capability "http").
pub mod http {
    pub use super::bindings::kavro::plugin::http::{send, IncomingResponse, OutgoingRequest};

    /// A GET to `upstream` for `uri` (path and query).
    pub fn get(upstream: &str, uri: &str) -> Result<IncomingResponse, super::HostError> {
        send(&OutgoingRequest {
            upstream: upstream.to_string(),
            method: "GET".to_string(),
            uri: uri.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

/// Wall time, monotonic time, and what is left of the current call's
/// deadline (capability "clock").
pub mod clock {
    pub use super::bindings::kavro::plugin::clock::{monotonic_ns, remaining_ms, wall_ms};
}

/// Counters and histograms (capability "metrics").
pub mod metrics {
    pub use super::bindings::kavro::plugin::metrics::{counter_add, histogram_observe};
}

#[doc(hidden)]
pub mod __private {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::marker::PhantomData;

    /// Where a plugin type keeps its value and its per-request state; the
    /// `export!` macro implements it in the plugin's crate.
    pub trait Slot: Plugin {
        fn with<R>(seq: u64, f: impl FnOnce(&Self, &mut Self::State) -> R) -> R;
        /// Runs `f` with request `seq`'s state for the last time.
        fn finish<R>(seq: u64, f: impl FnOnce(&Self, &mut Self::State) -> R) -> R;
    }

    /// Per-request state keyed by the host's request number. One slot: an
    /// instance serves one request from its first phase to its post before
    /// it serves another.
    pub struct StateCell<S>(RefCell<Option<(u64, S)>>);

    impl<S: Default> Default for StateCell<S> {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<S: Default> StateCell<S> {
        pub const fn new() -> Self {
            StateCell(RefCell::new(None))
        }

        pub fn with<R>(&self, seq: u64, f: impl FnOnce(&mut S) -> R) -> R {
            let mut slot = self.0.borrow_mut();
            if slot.as_ref().is_none_or(|(s, _)| *s != seq) {
                *slot = Some((seq, S::default()));
            }
            f(&mut slot.as_mut().expect("just set").1)
        }

        /// Post: the request's state (a fresh one if another request's is
        /// here), dropped afterwards.
        pub fn finish<R>(&self, seq: u64, f: impl FnOnce(&mut S) -> R) -> R {
            let taken = self.0.borrow_mut().take();
            let mut state = match taken {
                Some((s, state)) if s == seq => state,
                _ => S::default(),
            };
            f(&mut state)
        }
    }

    thread_local! {
        /// The request the plugin's code is running for, for the panic hook.
        static CURRENT_SEQ: Cell<u64> = const { Cell::new(0) };
    }

    /// Marks the request whose code runs next, and makes sure a panic in it
    /// reaches the host's log with its message and location.
    fn running(seq: u64) {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                bindings::kavro::plugin::log::fail(CURRENT_SEQ.get(), &info.to_string());
            }))
        });
        CURRENT_SEQ.set(seq);
    }

    pub struct Adapter<T>(PhantomData<T>);

    impl<T: Slot> bindings::exports::kavro::plugin::plugin::Guest for Adapter<T> {
        fn describe() -> Manifest {
            running(0);
            T::with(0, |p, _| p.manifest())
        }
    }

    #[cfg(feature = "prime")]
    impl<T: Slot + Prime> crate::prime_bindings::exports::kavro::plugin::prime::Guest for Adapter<T> {
        fn on_request(
            seq: u64,
            req: &Request,
        ) -> crate::prime_bindings::exports::kavro::plugin::prime::Outcome {
            use crate::prime_bindings::exports::kavro::plugin::prime::Outcome;
            running(seq);
            match T::with(seq, |p, s| p.on_request(s, req)) {
                PrimeOutcome::Continue => Outcome::Continue,
                PrimeOutcome::Rewrite(u) => Outcome::Rewrite(u),
                PrimeOutcome::Respond(r) => Outcome::Respond(r),
            }
        }
    }

    #[cfg(feature = "prepare")]
    impl<T: Slot + Prepare> crate::prepare_bindings::exports::kavro::plugin::prepare::Guest
        for Adapter<T>
    {
        fn on_prepare(
            seq: u64,
            req: &Request,
        ) -> crate::prepare_bindings::exports::kavro::plugin::prepare::Outcome {
            use crate::prepare_bindings::exports::kavro::plugin::prepare::Outcome;
            running(seq);
            match T::with(seq, |p, s| p.on_prepare(s, req)) {
                PrepareOutcome::Respond(r) => Outcome::Respond(r),
                PrepareOutcome::Forward(f) => Outcome::Forward(f),
                PrepareOutcome::Decline => Outcome::Decline,
            }
        }
    }

    #[cfg(feature = "present")]
    impl<T: Slot + Present> crate::present_bindings::exports::kavro::plugin::present::Guest
        for Adapter<T>
    {
        fn on_body(
            seq: u64,
            req: &Request,
            resp: &Response,
            body: Vec<u8>,
            args: Vec<String>,
        ) -> crate::present_bindings::exports::kavro::plugin::present::Outcome {
            use crate::present_bindings::exports::kavro::plugin::present::Outcome;
            running(seq);
            let outcome = match crate::Directive::from_args(args) {
                Some(d) => T::with(seq, |p, s| p.on_directive(s, req, resp, body, &d)),
                None => T::with(seq, |p, s| p.on_body(s, req, resp, body)),
            };
            match outcome {
                PresentOutcome::Keep => Outcome::Keep,
                PresentOutcome::Replace(b) => Outcome::Replace(b),
            }
        }
    }

    #[cfg(feature = "package")]
    impl<T: Slot + Package> crate::package_bindings::exports::kavro::plugin::package::Guest
        for Adapter<T>
    {
        fn on_response(seq: u64, req: &Request, resp: &Response) {
            running(seq);
            T::with(seq, |p, s| p.on_response(s, req, resp))
        }
    }

    #[cfg(feature = "post")]
    impl<T: Slot + Post> crate::post_bindings::exports::kavro::plugin::post::Guest for Adapter<T> {
        fn on_complete(batch: Vec<crate::post_bindings::exports::kavro::plugin::post::Completed>) {
            for c in batch {
                running(c.seq);
                T::finish(c.seq, |p, s| p.on_complete(s, &c.req, &c.resp, &c.done));
            }
        }
    }
}

/// Exports a plugin type and the phases it implements:
/// `export!(MyPlugin: prime, package);`. Each phase named must be enabled
/// as a feature of `kavro-sdk`.
#[macro_export]
macro_rules! export {
    ($ty:ty : $($phase:ident),+ $(,)?) => {
        const _: () = {
            thread_local! {
                static __KAVRO_PLUGIN: $ty = <$ty as ::core::default::Default>::default();
                static __KAVRO_STATE: $crate::__private::StateCell<<$ty as $crate::Plugin>::State> =
                    const { $crate::__private::StateCell::new() };
            }
            impl $crate::__private::Slot for $ty {
                fn with<R>(seq: u64, f: impl FnOnce(&Self, &mut Self::State) -> R) -> R {
                    __KAVRO_PLUGIN.with(|p| {
                        __KAVRO_STATE.with(|s| s.with(seq, |st| f(p, st)))
                    })
                }
                fn finish<R>(seq: u64, f: impl FnOnce(&Self, &mut Self::State) -> R) -> R {
                    __KAVRO_PLUGIN.with(|p| __KAVRO_STATE.with(|s| s.finish(seq, |st| f(p, st))))
                }
            }
            type __KavroAdapter = $crate::__private::Adapter<$ty>;
            $crate::bindings::export_base!(__KavroAdapter with_types_in $crate::bindings);
            $( $crate::__export_phase!($phase, __KavroAdapter); )+
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_phase {
    (prime, $a:ident) => {
        $crate::__export_prime!($a);
    };
    (prepare, $a:ident) => {
        $crate::__export_prepare!($a);
    };
    (present, $a:ident) => {
        $crate::__export_present!($a);
    };
    (package, $a:ident) => {
        $crate::__export_package!($a);
    };
    (post, $a:ident) => {
        $crate::__export_post!($a);
    };
    ($other:ident, $a:ident) => {
        compile_error!(concat!(
            "unknown phase `",
            stringify!($other),
            "`; phases are prime, prepare, present, package, post"
        ));
    };
}

#[cfg(feature = "prime")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_prime {
    ($a:ident) => {
        $crate::prime_bindings::export_prime!($a with_types_in $crate::prime_bindings);
    };
}
#[cfg(not(feature = "prime"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_prime {
    ($a:ident) => {
        compile_error!("enable the `prime` feature of kavro-sdk to export this phase");
    };
}

#[cfg(feature = "prepare")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_prepare {
    ($a:ident) => {
        $crate::prepare_bindings::export_prepare!($a with_types_in $crate::prepare_bindings);
    };
}
#[cfg(not(feature = "prepare"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_prepare {
    ($a:ident) => {
        compile_error!("enable the `prepare` feature of kavro-sdk to export this phase");
    };
}

#[cfg(feature = "present")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_present {
    ($a:ident) => {
        $crate::present_bindings::export_present!($a with_types_in $crate::present_bindings);
    };
}
#[cfg(not(feature = "present"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_present {
    ($a:ident) => {
        compile_error!("enable the `present` feature of kavro-sdk to export this phase");
    };
}

#[cfg(feature = "package")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_package {
    ($a:ident) => {
        $crate::package_bindings::export_package!($a with_types_in $crate::package_bindings);
    };
}
#[cfg(not(feature = "package"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_package {
    ($a:ident) => {
        compile_error!("enable the `package` feature of kavro-sdk to export this phase");
    };
}

#[cfg(feature = "post")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_post {
    ($a:ident) => {
        $crate::post_bindings::export_post!($a with_types_in $crate::post_bindings);
    };
}
#[cfg(not(feature = "post"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_post {
    ($a:ident) => {
        compile_error!("enable the `post` feature of kavro-sdk to export this phase");
    };
}
