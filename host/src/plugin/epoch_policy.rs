//! What happens to a running call at each epoch tick: fail it past its
//! deadline, let a short call run on, yield a long one's worker between
//! ticks and move it to the slow lane past its `worker_cpu`, and throttle
//! one that looks stuck.

use wasmtime::{Store, UpdateDeadline};

use super::call::Call;
use super::epoch::{now_tick, ticks_for, TICK};
use super::slow_lane;
use super::state::HostState;

/// How long a call runs at full speed before it is throttled.
const FULL_SPEED: std::time::Duration = std::time::Duration::from_millis(2);
/// A throttled call's pause after each tick it runs.
const THROTTLED_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// A call on the slow lane has its deadline moved by the time the lane
/// waited for a CPU (a saturated host's doing, not the plugin's), by up to
/// nine more deadlines.
fn deadline_passed(call: &Call) -> bool {
    let now = now_tick();
    if now < call.deadline_tick {
        return false;
    }
    let allowed = call.deadline_tick - call.call_tick;
    let grace = slow_lane::starved().map_or(0, |waited| {
        ((waited.as_micros() / TICK.as_micros()) as u64).min(9 * allowed)
    });
    now >= call.deadline_tick + grace
}

/// A deadline hit; the epoch callback raises it.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
pub struct DeadlineExceeded;

/// Installs the policy as the store's epoch deadline callback.
pub fn install(store: &mut Store<HostState>) {
    store.epoch_deadline_callback(|mut ctx| {
        if deadline_passed(&ctx.data().call) {
            Err(DeadlineExceeded.into())
        } else if slow_lane::movable() {
            // Judged by the CPU time the call used since its first tick,
            // not the clock: a short call that a tick (or the OS
            // pausing the thread) caught runs on undisturbed.
            let used = ctx.data_mut().call.cpu.sample();
            if used < TICK {
                return Ok(UpdateDeadline::Continue(1));
            }
            if used >= ctx.data().call.worker_cpu {
                slow_lane::request_move();
            }
            // Long for a phase call: the worker serves others between
            // its ticks and, past the plugin's `worker_cpu`, the call
            // finishes on the lane.
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        } else if !slow_lane::on_lane()
            || now_tick() - ctx.data().call.call_tick < ticks_for(FULL_SPEED)
        {
            // An instantiation, or a call on the slow lane: give the
            // thread back between ticks. An instantiation is never
            // throttled: at load it serves no request and competes with
            // the compiles of a start, so throttled it could miss its
            // deadline on a busy host; one for a request ends at its
            // deadline like a call. tokio's yield_now
            // wakes the call only after the runtime has polled for I/O,
            // so what arrived meanwhile is served between a looping
            // plugin's ticks, not after dozens of them.
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        } else {
            // A call on the lane this long is most likely stuck: it runs on, to its
            // deadline, but paused a millisecond after each tick, leaving
            // the core to work that is not.
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::time::sleep(THROTTLED_PAUSE)),
            ))
        }
    });
}
