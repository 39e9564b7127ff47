//! `kavro:plugin/clock`: wall time, monotonic time, and what is left of
//! the current call's deadline, which only the host knows: a plugin that
//! fetches or computes can stop in time to answer. The smallest capability,
//! and the pattern for a new one: a unit, a view, the host functions.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::component::Linker;

use super::{denied, view_of, CapCtx, Granting, HasView, HostView, Unit};
use crate::config::Config;
use crate::plugin::bindings::kavro::plugin::clock::{self as wit, Host};
use crate::plugin::bindings::types::HostError;

pub struct Clock;

impl Unit for Clock {
    const NAME: &'static str = "clock";
    /// The host's start: monotonic time counts from it.
    type Shared = Instant;
    /// The host's start, if granted.
    type View = Option<Instant>;

    fn shared(_: &Config) -> Instant {
        Instant::now()
    }

    fn view(_: &Granting<'_>, start: &Instant) -> Option<Instant> {
        Some(*start)
    }

    fn add_to_linker<T: HostView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasView<Clock>>(linker, view_of::<T, Clock>)
    }
}

impl CapCtx<'_, Option<Instant>> {
    fn start(&self) -> Result<Instant, HostError> {
        self.view.ok_or_else(|| denied::<Clock>(self.call))
    }
}

impl Host for CapCtx<'_, Option<Instant>> {
    fn wall_ms(&mut self) -> Result<u64, HostError> {
        self.start()?;
        Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64))
    }

    fn monotonic_ns(&mut self) -> Result<u64, HostError> {
        Ok(self.start()?.elapsed().as_nanos() as u64)
    }

    fn remaining_ms(&mut self) -> Result<u64, HostError> {
        self.start()?;
        Ok(self.call.time_left().as_millis() as u64)
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
        let mut no = view::<Clock>(&granting(&[]));
        let mut ctx = CapCtx {
            view: &mut no,
            call: &mut call,
        };
        assert!(is_denied(ctx.wall_ms()));
        assert!(is_denied(ctx.monotonic_ns()));
        assert!(is_denied(ctx.remaining_ms()));
    }

    #[test]
    fn time_moves_on_and_the_deadline_counts_down() {
        let mut call = call();
        call.deadline_tick = crate::plugin::epoch::now_tick()
            + crate::plugin::epoch::ticks_for(std::time::Duration::from_millis(50));
        let mut yes = view::<Clock>(&granting(&[Capability::Clock]));
        let mut ctx = CapCtx {
            view: &mut yes,
            call: &mut call,
        };
        // 2026-01-01 in ms since the epoch.
        assert!(ctx.wall_ms().unwrap() > 1_767_225_600_000);
        let a = ctx.monotonic_ns().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(ctx.monotonic_ns().unwrap() >= a + 2_000_000);
        let left = ctx.remaining_ms().unwrap();
        assert!((1..=50).contains(&left), "{left}");
        ctx.call.deadline_tick = 0;
        assert_eq!(ctx.remaining_ms().unwrap(), 0);
    }
}
