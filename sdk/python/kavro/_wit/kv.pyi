"""A key-value store shared by all instances of a plugin; it outlives
instances and hot-swaps (wit: kavro:plugin/kv). Capability "kv".

Every function raises `kavro.Err` whose `.value` is a `kavro.types.HostError`:
`HostError_Denied` without the capability, `HostError_Invalid` for a key over
1024 bytes (and as noted), `HostError_Unavailable` when the store is full.
"""

def get(key: str) -> bytes | None:
    """The value stored under `key`, or None (missing or expired). A
    counter's value is its decimal digits, e.g. b"42"."""

def set(key: str, value: bytes, ttl_ms: int | None) -> None:
    """Stores `value` (at most 1 MiB, else `HostError_Invalid`) under `key`.
    `ttl_ms`: None keeps the entry until deleted. The argument is required."""

def delete(key: str) -> bool:
    """Deletes `key`; whether a live entry was there."""

def increment(key: str, delta: int, ttl_ms: int | None) -> int:
    """Adds `delta` (a signed 64-bit int) atomically, a missing key counting
    as 0, and returns the new value. `ttl_ms` applies only when the key is
    created; None: no expiry. All three arguments are required.
    `HostError_Invalid` if the value is not a counter or would overflow."""
