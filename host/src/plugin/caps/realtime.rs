//! `kavro:plugin/realtime`: a plugin publishes to the realtime hub's
//! groups and reads their sizes. The hub is host-wide, so it outlives
//! plugin versions and config swaps, as its connections do.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use wasmtime::component::Linker;

use super::{denied, view_of, CapCtx, Granting, HasView, HostView, Unit};
use crate::config::Config;
use crate::plugin::bindings::kavro::plugin::realtime::{self as wit, Host};
use crate::plugin::bindings::types::HostError;
use crate::realtime::Hub;

pub struct Realtime;

impl Unit for Realtime {
    const NAME: &'static str = "realtime";
    type Shared = Arc<Hub>;
    /// The hub, if granted.
    type View = Option<Arc<Hub>>;

    fn shared(config: &Config) -> Arc<Hub> {
        Arc::new(Hub::new(crate::cluster::Cluster::of(config)))
    }

    fn view(_: &Granting<'_>, hub: &Arc<Hub>) -> Option<Arc<Hub>> {
        Some(hub.clone())
    }

    fn add_to_linker<T: HostView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasView<Realtime>>(linker, view_of::<T, Realtime>)
    }
}

impl CapCtx<'_, Option<Arc<Hub>>> {
    fn hub(&self) -> Result<Arc<Hub>, HostError> {
        self.view
            .clone()
            .ok_or_else(|| denied::<Realtime>(self.call))
    }
}

impl Host for CapCtx<'_, Option<Arc<Hub>>> {
    fn publish(&mut self, to: Vec<String>, message: String) -> Result<u32, HostError> {
        let hub = self.hub()?;
        if to.iter().any(String::is_empty) {
            return Err(HostError::Invalid("an empty group name".into()));
        }
        hub.stats.published.fetch_add(1, Ordering::Relaxed);
        Ok(hub.deliver(&to, &message) as u32)
    }

    fn group_size(&mut self, name: String) -> Result<u32, HostError> {
        Ok(self.hub()?.group_size(&name) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{call, granting, is_denied, view};
    use super::super::Capability;
    use super::*;

    #[test]
    fn denied_unless_granted() {
        let mut call = call();
        let mut no = view::<Realtime>(&granting(&[]));
        let mut ctx = CapCtx {
            view: &mut no,
            call: &mut call,
        };
        assert!(is_denied(ctx.group_size("/g".into())));
        let mut yes = view::<Realtime>(&granting(&[Capability::Realtime]));
        let mut ctx = CapCtx {
            view: &mut yes,
            call: &mut call,
        };
        assert_eq!(ctx.group_size("/g".into()).unwrap(), 0);
        assert_eq!(ctx.publish(vec!["/g".into()], "m".into()).unwrap(), 0);
        assert!(ctx.publish(vec![String::new()], "m".into()).is_err());
    }
}
