"""Requests to upstreams declared in the host's config; nothing else is
reachable (wit: kavro:plugin/http). Capability "http"."""

from dataclasses import dataclass

@dataclass
class OutgoingRequest:
    upstream: str
    """The name of an upstream in the host's config."""
    method: str
    uri: str
    """Path and query, starting with "/"."""
    headers: list[tuple[str, str]]
    body: bytes

@dataclass
class IncomingResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

def send(req: OutgoingRequest) -> IncomingResponse:
    """Sends the request and returns the whole response. Bounded by the
    upstream's timeouts and by what is left of the plugin's deadline.

    Raises `kavro.Err`: `.value` is `HostError_Denied` without the
    capability; `HostError_Invalid` for an undeclared upstream, a bad method,
    a uri not starting with "/"; `HostError_Unavailable` when the upstream
    cannot be reached, errs, answers too late or sends too large a body.
    """
