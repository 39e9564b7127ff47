"""The realtime hub's groups (wit: kavro:plugin/realtime). Capability "realtime".

Raises `kavro.Err` whose `.value` is `HostError_Denied` without the capability.
"""
from typing import List

def publish(to: List[str], message: str) -> int:
    """Sends `message` as one text frame to the clients in `to`: groups
    (names starting with `/`) and client ids, each client once. Returns the
    clients reached. `HostError_Invalid` for an empty name."""

def group_size(name: str) -> int:
    """The clients in group `name`, or 1 for a connected client's id."""
