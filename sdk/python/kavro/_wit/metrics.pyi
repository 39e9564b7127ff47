"""Counters and histograms, exported by the host (wit: kavro:plugin/metrics).
Capability "metrics". Names are 1-64 characters of a-z, 0-9 and _.

Raises `kavro.Err`: `.value` is `HostError_Denied` without the capability,
`HostError_Invalid` for a bad name.
"""

def counter_add(name: str, value: int) -> None:
    """Adds `value` (an unsigned 64-bit int) to counter `name`."""

def histogram_observe(name: str, value: float) -> None:
    """Records `value` in histogram `name`."""
