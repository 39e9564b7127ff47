"""Types shared by every phase and host import (wit: kavro:plugin/types).

At run time this is `kavro.types` (componentize-py's
`wit_world.imports.types`).
"""

from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Self

@dataclass
class HostError_Denied:
    """The operator did not grant this plugin the capability."""

    value: str

@dataclass
class HostError_Invalid:
    """The arguments were not acceptable (bad name, too large, wrong phase, ...)."""

    value: str

@dataclass
class HostError_Unavailable:
    """The host could not do it right now."""

    value: str

HostError = HostError_Denied | HostError_Invalid | HostError_Unavailable
"""Why a host call was refused: the `.value` of the `kavro.Err` it raises."""

class Level(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4

class Request:
    """The request being handled (`req` in every phase). A handle: each
    accessor copies only what it returns. Header names are lower-case."""

    def method(self) -> str: ...
    def uri(self) -> str:
        """Path and query, as the request will be routed and forwarded."""
    def path(self) -> str: ...
    def query(self) -> str | None: ...
    def authority(self) -> str | None:
        """The Host header (or HTTP/2 :authority), as sent."""
    def scheme(self) -> str:
        """"http" or "https", as the client reached Kavro."""
    def client_ip(self) -> str:
        """The client's IP address as seen by the listener."""
    def id(self) -> str:
        """The request id carried in X-Request-Id."""
    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
    def header_all(self, name: str) -> list[str]:
        """Every value of header `name`."""
    def headers(self) -> list[tuple[str, str]]:
        """Every header as (name, value)."""
    def set_header(self, name: str, value: str) -> None:
        """Replaces any header of that name. Only in prime and prepare.

        Raises: `kavro.Err(HostError_Invalid)` in other phases, or for a bad
        name or value, or past the limit of headers added in one call.
        """
    def append_header(self, name: str, value: str) -> None:
        """Adds a header beside any of that name. Only in prime and prepare.

        Raises: `kavro.Err(HostError_Invalid)`, as `set_header`.
        """
    def remove_header(self, name: str) -> None:
        """Removes every header of that name. Only in prime and prepare.

        Raises: `kavro.Err(HostError_Invalid)` in other phases.
        """
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        """Releases the handle (the SDK does it for you)."""

class Response:
    """The response head on its way to the client (`resp` in present,
    package and post). Header names are lower-case."""

    def status(self) -> int: ...
    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
    def header_all(self, name: str) -> list[str]:
        """Every value of header `name`."""
    def headers(self) -> list[tuple[str, str]]:
        """Every header as (name, value)."""
    def set_header(self, name: str, value: str) -> None:
        """Replaces any header of that name. In package, and in present
        while the head is not sent yet.

        Raises: `kavro.Err(HostError_Invalid)` in other phases, or for a bad
        name or value, or past the limit of headers added in one call.
        """
    def append_header(self, name: str, value: str) -> None:
        """Adds a header beside any of that name. Where `set_header` may.

        Raises: `kavro.Err(HostError_Invalid)`, as `set_header`.
        """
    def remove_header(self, name: str) -> None:
        """Removes every header of that name. Where `set_header` may.

        Raises: `kavro.Err(HostError_Invalid)` in other phases.
        """
    def set_status(self, status: int) -> None:
        """Sets a final status: 200-599, except 204 and 304 (they carry no
        body). Where `set_header` may: package, and present while the head
        is not sent yet.

        Raises: `kavro.Err(HostError_Invalid)` in other phases, or for
        another status.
        """
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        """Releases the handle (the SDK does it for you)."""

@dataclass
class CacheDirective_NoStore:
    pass

@dataclass
class CacheDirective_TtlMs:
    value: int

CacheDirective = CacheDirective_NoStore | CacheDirective_TtlMs

@dataclass
class Reply:
    """The wit record; plugins return `kavro.Reply` instead."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cache: CacheDirective | None

@dataclass
class Forward:
    """The wit record; plugins return `kavro.forward(...)` instead."""

    upstream: str
    uri: str | None
    headers: list[tuple[str, str]]

@dataclass
class Completion:
    """What the host knows once the response has been written (`done` in
    post)."""

    status: int
    duration_us: int
    bytes_sent: int
    upstream: str | None
    """The upstream the request went to, if it was forwarded."""
    error: str | None
    """What went wrong, if the request failed."""

@dataclass
class Manifest:
    name: str
    version: str
    capabilities: list[str]
    directives: list[str]
    """The `!>` file directives it answers in present."""
