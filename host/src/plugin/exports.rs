//! A plugin's phase exports as data: for each phase it exports, the export
//! lookups (resolved once per plugin version) and, in each instance, the
//! phase's functions, kept in [`PerPhase`] tables.

use wasmtime::component::InstancePre;
use wasmtime::AsContextMut;

use super::bindings::{package_phase, post, prepare, present, prime};
use super::phase::{PerPhase, Phase, Phases};
use super::state::HostState;

/// A phase's typed functions, found in an instance's table.
pub trait PhaseGuest: Sized {
    const PHASE: Phase;
    fn from(guest: &Guest) -> Option<&Self>;
}

macro_rules! phase_exports {
    ($($phase:ident: $module:ident),+ $(,)?) => {
        /// One phase's export lookups.
        #[derive(Clone)]
        pub enum Indices {
            $($phase($module::GuestIndices)),+
        }

        /// One phase's functions in one instance.
        pub enum Guest {
            $($phase($module::Guest)),+
        }

        impl Indices {
            fn new(phase: Phase, pre: &InstancePre<HostState>) -> wasmtime::Result<Indices> {
                Ok(match phase {
                    $(Phase::$phase => Indices::$phase($module::GuestIndices::new(pre)?)),+
                })
            }

            fn load(
                &self,
                store: impl AsContextMut,
                instance: &wasmtime::component::Instance,
            ) -> wasmtime::Result<Guest> {
                Ok(match self {
                    $(Indices::$phase(i) => Guest::$phase(i.load(store, instance)?)),+
                })
            }
        }

        $(impl PhaseGuest for $module::Guest {
            const PHASE: Phase = Phase::$phase;
            fn from(guest: &Guest) -> Option<&Self> {
                match guest {
                    Guest::$phase(g) => Some(g),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        })+
    };
}

phase_exports! {
    Prime: prime,
    Prepare: prepare,
    Present: present,
    Package: package_phase,
    Post: post,
}

/// The export lookups of the phases a plugin version exports.
pub type PhaseIndices = PerPhase<Option<Indices>>;

/// The phase functions of one instance.
pub type Guests = PerPhase<Option<Guest>>;

/// Resolves the lookups of every exported phase.
pub fn indices(phases: &Phases, pre: &InstancePre<HostState>) -> wasmtime::Result<PhaseIndices> {
    let mut table = PhaseIndices::default();
    for phase in Phase::ALL {
        if phases[phase] {
            table[phase] = Some(Indices::new(phase, pre)?);
        }
    }
    Ok(table)
}

/// Loads an instance's functions for every exported phase.
pub fn load(
    indices: &PhaseIndices,
    mut store: impl AsContextMut,
    instance: &wasmtime::component::Instance,
) -> wasmtime::Result<Guests> {
    let mut guests = Guests::default();
    for phase in Phase::ALL {
        if let Some(i) = &indices[phase] {
            guests[phase] = Some(i.load(&mut store, instance)?);
        }
    }
    Ok(guests)
}

/// The functions of phase `G` in an instance; the pipeline calls a phase
/// only on plugins that export it.
pub fn exported<G: PhaseGuest>(guests: &Guests) -> &G {
    guests[G::PHASE]
        .as_ref()
        .and_then(G::from)
        .expect("called only when exported")
}
