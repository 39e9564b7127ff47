"""The host's response cache (wit: kavro:plugin/cache). Capability "cache".

Raises `kavro.Err`: `.value` is `HostError_Denied` without the capability,
`HostError_Invalid` for a key that is empty, over the length limit or has
control characters, and for `set_key`/`bypass` outside prime.
"""

def set_key(key: str) -> None:
    """In prime: look this request up, and store its response, under `key`
    instead of the default (host + path + query)."""

def bypass() -> None:
    """In prime: neither look this request up nor store its response."""

def purge(key: str) -> int:
    """Drops the entry stored under `key`, every Vary variant included.
    Returns how many responses went."""

def purge_prefix(prefix: str) -> int:
    """Drops every entry whose key starts with `prefix`. Returns how many
    responses went."""
