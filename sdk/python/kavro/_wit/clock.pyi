"""Time as the host keeps it (wit: kavro:plugin/clock). Capability "clock".

Raises `kavro.Err` whose `.value` is `HostError_Denied` without the capability.
"""

def wall_ms() -> int:
    """Milliseconds since the Unix epoch."""

def monotonic_ns() -> int:
    """Nanoseconds since the host started; never goes back: for measuring."""

def remaining_ms() -> int:
    """Milliseconds left before the current call's deadline (a call on a
    saturated host's slow lane may be given more)."""
