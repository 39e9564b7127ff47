//! Host capabilities, one module each. A capability module owns everything
//! about it: its name, how a plugin's settings grant it (and the hint when
//! they do not), its host-wide state and background services, what an
//! instance of a granted plugin sees (its view), and the linking of its WIT
//! interface. [`capabilities!`] below is the one list of them.
//!
//! A call to a capability that was not granted returns
//! `host-error::denied`; it never traps.
//!
//! Adding one: write `caps/<name>.rs` with a type implementing [`Unit`]
//! (see `clock.rs`, the smallest), add its interface to `wit/host.wit` and
//! the `imports` world, and add one line to the list below.

pub mod cache;
pub mod clock;
pub mod config;
pub mod env;
pub mod fs;
pub mod http;
pub mod kv;
pub mod log;
pub mod metrics;
pub mod realtime;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use pingora_core::services::ServiceWithDependents;
use wasmtime::component::{HasData, HasSelf, Linker};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiView};

use super::bindings::types::HostError;
use super::call::Call;
use crate::config::{Config, PluginSettings};
use crate::upstream::Upstream;

/// One host capability. Its view is what a plugin instance reads through
/// the capability's imports; a plugin not granted it gets the default
/// view, which denies.
pub trait Unit: 'static {
    /// Its name in a plugin's settings and manifest.
    const NAME: &'static str;
    /// Every plugin has it without asking.
    const ALWAYS: bool = false;
    /// Granted by listing it in `capabilities = [...]`; a capability granted
    /// by a setting of its own says so in [`Unit::how_to_grant`].
    const LISTED: bool = true;

    /// Host-wide state, built once at start: it outlives plugin versions,
    /// so a hot swap keeps it.
    type Shared: Send + Sync + 'static;
    /// What an instance of one granted plugin version sees; built once per
    /// version and cloned into each of its instances.
    type View: Default + Clone + Send + 'static;

    fn shared(config: &Config) -> Self::Shared;

    /// Whether a plugin's settings grant it.
    fn granted(settings: &PluginSettings) -> bool {
        Self::ALWAYS || settings.capabilities.iter().any(|c| c.name() == Self::NAME)
    }

    /// What to write in a plugin's settings to grant it.
    fn how_to_grant() -> String {
        format!("capabilities = [\"{}\"]", Self::NAME)
    }

    /// The view of a plugin version its settings grant this capability.
    fn view(plugin: &Granting<'_>, shared: &Self::Shared) -> Self::View;

    fn add_to_linker<T: HostView>(linker: &mut Linker<T>) -> wasmtime::Result<()>;

    /// Background services that keep its host-wide state.
    fn services(_shared: &Self::Shared) -> Vec<Box<dyn ServiceWithDependents>> {
        Vec::new()
    }

    /// What the plugin's WASI context gets from this view (WASI grants
    /// nothing by default).
    fn wasi(_view: &Self::View, _wasi: &mut WasiCtxBuilder) -> anyhow::Result<()> {
        Ok(())
    }
}

/// What a capability reads to grant one plugin version.
pub struct Granting<'a> {
    pub plugin: &'a str,
    pub settings: &'a PluginSettings,
    /// The upstreams of the config the plugin is loaded with.
    pub upstreams: &'a HashMap<String, Arc<Upstream>>,
}

/// What a capability's host functions see: its own view and the call in
/// progress (the plugin's name, the request, the deadline).
pub struct CapCtx<'a, V> {
    pub view: &'a mut V,
    pub call: &'a mut Call,
}

/// A store's data, as the capabilities see it.
pub trait HostView: WasiView + Send + 'static {
    fn parts(&mut self) -> (&mut Views, &mut Call);
}

/// Links capability `U`'s interface through its view.
pub struct HasView<U>(PhantomData<U>);

impl<U: Unit> HasData for HasView<U> {
    type Data<'a> = CapCtx<'a, U::View>;
}

/// The view of capability `U` in a set of views.
pub trait ViewOf<U: Unit> {
    fn view_mut(&mut self) -> &mut U::View;
}

/// The getter a capability's `add_to_linker` passes to wasmtime.
pub fn view_of<T: HostView, U: Unit>(host: &mut T) -> CapCtx<'_, U::View>
where
    Views: ViewOf<U>,
{
    let (views, call) = host.parts();
    CapCtx {
        view: views.view_mut(),
        call,
    }
}

/// The error a capability's functions return to a plugin not granted it.
pub fn denied<U: Unit>(call: &Call) -> HostError {
    HostError::Denied(format!(
        "plugin `{}` was not granted `{}`; grant it with {} in the plugin's settings",
        call.plugin,
        U::NAME,
        U::how_to_grant()
    ))
}

/// Declares the capabilities: for each `module: Type`, the enum variant
/// `Type`, a field in [`Shared`] and in [`Views`], and its linking.
macro_rules! capabilities {
    ($($module:ident: $unit:ident),+ $(,)?) => {
        /// A host capability, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Capability {
            $($unit),+
        }

        impl Capability {
            pub const ALL: &[Capability] = &[$(Capability::$unit),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Capability::$unit => <$module::$unit as Unit>::NAME),+
                }
            }

            pub fn from_name(name: &str) -> Option<Capability> {
                Capability::ALL.iter().copied().find(|c| c.name() == name)
            }

            /// Granted by listing it in `capabilities = [...]`.
            pub fn listed(self) -> bool {
                match self {
                    $(Capability::$unit => <$module::$unit as Unit>::LISTED),+
                }
            }

            pub fn always(self) -> bool {
                match self {
                    $(Capability::$unit => <$module::$unit as Unit>::ALWAYS),+
                }
            }

            pub fn granted(self, settings: &PluginSettings) -> bool {
                match self {
                    $(Capability::$unit => <$module::$unit as Unit>::granted(settings)),+
                }
            }

            pub fn how_to_grant(self) -> String {
                match self {
                    $(Capability::$unit => <$module::$unit as Unit>::how_to_grant()),+
                }
            }
        }

        /// Every capability's host-wide state.
        pub struct Shared {
            $(pub $module: <$module::$unit as Unit>::Shared),+
        }

        impl Shared {
            pub fn new(config: &Config) -> Shared {
                Shared {
                    $($module: <$module::$unit as Unit>::shared(config)),+
                }
            }

            /// The background services that keep the host-wide state.
            pub fn services(&self) -> Vec<Box<dyn ServiceWithDependents>> {
                let mut all = Vec::new();
                $(all.extend(<$module::$unit as Unit>::services(&self.$module));)+
                all
            }
        }

        /// What an instance of one plugin version may use: each
        /// capability's view, the default (denying) one where not granted.
        #[derive(Default, Clone)]
        pub struct Views {
            $(pub $module: <$module::$unit as Unit>::View),+
        }

        impl Views {
            pub fn new(plugin: &Granting<'_>, shared: &Shared) -> Views {
                Views {
                    $($module: if <$module::$unit as Unit>::granted(plugin.settings) {
                        <$module::$unit as Unit>::view(plugin, &shared.$module)
                    } else {
                        Default::default()
                    }),+
                }
            }

            /// The instance's WASI context: nothing but what was granted.
            pub fn wasi(&self) -> anyhow::Result<WasiCtx> {
                let mut wasi = WasiCtx::builder();
                $(<$module::$unit as Unit>::wasi(&self.$module, &mut wasi)?;)+
                Ok(wasi.build())
            }
        }

        $(impl ViewOf<$module::$unit> for Views {
            fn view_mut(&mut self) -> &mut <$module::$unit as Unit>::View {
                &mut self.$module
            }
        })+

        /// Links WASI, the request and response handles, and every
        /// capability's interface.
        pub fn add_to_linker<T: HostView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
            wasmtime_wasi::p2::add_to_linker_async(linker)?;
            super::bindings::types::add_to_linker::<T, HasSelf<Call>>(linker, |host| host.parts().1)?;
            $(<$module::$unit as Unit>::add_to_linker(linker)?;)+
            Ok(())
        }
    };
}

capabilities! {
    log: Log,
    config: Config,
    kv: Kv,
    metrics: Metrics,
    cache: Cache,
    http: Http,
    clock: Clock,
    realtime: Realtime,
    env: Env,
    fs: Fs,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Calling a capability's host functions directly, without wasm.
    use super::*;

    /// A call of plugin `p` with default limits.
    pub fn call() -> Call {
        Call::new("p".into(), &crate::config::Limits::default())
    }

    /// The view plugin `p` gets with `settings`.
    pub fn view<U: Unit>(settings: &PluginSettings) -> U::View
    where
        Views: ViewOf<U>,
    {
        let config = Config::load(None).expect("the embedded default config");
        let shared = Shared::new(&config);
        let mut views = Views::new(
            &Granting {
                plugin: "p",
                settings,
                upstreams: &HashMap::new(),
            },
            &shared,
        );
        <Views as ViewOf<U>>::view_mut(&mut views).clone()
    }

    /// Settings that list `capabilities`.
    pub fn granting(capabilities: &[Capability]) -> PluginSettings {
        PluginSettings {
            capabilities: capabilities.iter().copied().collect(),
            ..Default::default()
        }
    }

    pub fn is_denied<T: std::fmt::Debug>(r: Result<T, HostError>) -> bool {
        matches!(r, Err(HostError::Denied(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &c in Capability::ALL {
            assert_eq!(Capability::from_name(c.name()), Some(c));
        }
        assert_eq!(Capability::from_name("sockets"), None);
        assert!(Capability::Log.always() && Capability::Config.always());
        assert!(!Capability::Env.listed() && !Capability::Fs.listed());
        assert_eq!(Capability::Env.how_to_grant(), "env = [\"VAR\", ...]");
    }

    #[test]
    fn nothing_but_log_and_config_without_asking() {
        let none = PluginSettings::default();
        let granted: Vec<Capability> = Capability::ALL
            .iter()
            .copied()
            .filter(|c| c.granted(&none))
            .collect();
        assert_eq!(granted, [Capability::Log, Capability::Config]);
    }
}
