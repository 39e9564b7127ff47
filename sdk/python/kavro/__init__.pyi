"""Type stubs for the kavro SDK, for editors and type checkers.

The host imports are typed from the bindings componentize-py generates for
wit/*.wit (`sdk/python/kavro-py bindings DIR` writes them). At run time
`kavro.kv`, `kavro.config`, ... and `kavro.types` are the generated
`wit_world.imports.*` modules; here they come from `kavro._wit`, which
exists only as stubs.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kavro._wit import cache as cache
from kavro._wit import clock as clock
from kavro._wit import config as config
from kavro._wit import http as http
from kavro._wit import kv as kv
from kavro._wit import log as log
from kavro._wit import metrics as metrics
from kavro._wit import realtime as realtime
from kavro._wit import types as types

__all__ = [
    "Plugin", "Reply", "Directive", "Err", "export", "rewrite", "forward",
    "cache", "clock", "config", "http", "kv", "log", "metrics", "realtime", "debug", "info", "warn", "error",
]

_E = TypeVar("_E")
_P = TypeVar("_P", bound=Plugin)

class Err(Exception, Generic[_E]):
    """Raised by a host call the host refused (componentize-py's
    `componentize_py_types.Err`). `.value` is the host error:
    `kavro.types.HostError_Denied`, `HostError_Invalid` or
    `HostError_Unavailable`, each with a message in its own `.value`."""

    value: _E
    def __init__(self, value: _E) -> None: ...

PHASES: tuple[str, ...]

def debug(message: str) -> None:
    """`log.log(types.Level.DEBUG, message)`."""

def info(message: str) -> None:
    """`log.log(types.Level.INFO, message)`."""

def warn(message: str) -> None:
    """`log.log(types.Level.WARN, message)`."""

def error(message: str) -> None:
    """`log.log(types.Level.ERROR, message)`."""

@dataclass
class _Rewrite:
    uri: str

@dataclass
class _Forward:
    upstream: str
    uri: str | None
    headers: list[tuple[str, str]]

@dataclass
class Reply:
    """A complete response, returned from prime or prepare. `body` may be
    `str` (sent as UTF-8). `cache_ms` (prepare only, on a route that
    caches): store it this long; `no_store`: never store it."""

    status: int = ...
    body: bytes | bytearray | str = ...
    headers: list[tuple[str, str]] | None = ...
    cache_ms: int | None = ...
    no_store: bool = ...
    def header(self, name: str, value: str) -> Reply:
        """Adds a header; returns the reply, for chaining."""

@dataclass
class Directive:
    """A `!>` directive that named the plugin, from a static file's first
    line: `!> tmpl header.html &> nonce` is two directives, `tmpl` with
    args `["header.html"]` and `nonce` with none."""

    name: str
    args: list[str]
    @staticmethod
    def from_args(args: list[str]) -> Directive | None:
        """What the host passes to present: the name first, then the
        arguments; None (an ordinary present call) when empty."""

def rewrite(uri: str) -> _Rewrite:
    """From prime: route and forward the request as `uri` (path and query)."""

def forward(
    upstream: str, uri: str | None = None, headers: Iterable[tuple[str, str]] | None = None
) -> _Forward:
    """From prepare: hand the request to upstream `upstream` (declared in the
    host's config); `uri`: a new path and query, None keeps it; `headers`:
    set on the upstream request, replacing same-named ones."""

class Plugin:
    """Base class: set `name`, `version`, `capabilities` (and `directives`);
    define phases.

    The phase methods below are declared for type checkers and editors
    only: the real base class defines none, and a plugin has exactly the
    phases its subclass defines. An exception escaping a phase (a
    `kavro.Err` included) is reported to the host with its traceback and
    the plugin's failure policy applies.
    """

    name: str
    version: str
    capabilities: list[str]
    """Capabilities the plugin needs: "kv", "metrics", "cache", "http",
    "clock", ... (the operator grants them)."""
    directives: list[str]
    """The `!>` file directives the plugin answers ("tmpl"); empty by
    default. A plugin that answers any runs in present only where a static
    file's directive line names it, and gets `directive` (else `present`)
    there; its other phases run as usual."""
    State: Callable[[], Any]
    """Makes the per-request `state`, once per request; `dict` by default."""

    def prime(self, state: Any, req: types.Request) -> _Rewrite | Reply | None:
        """Before the cache and routing. None: continue; `kavro.rewrite(uri)`:
        route the new path and query; a `Reply`: answer now."""
    def prepare(self, state: Any, req: types.Request) -> Reply | _Forward | None:
        """Produce the route's response. None: decline (the route's own
        action runs); a `Reply`: answer; `kavro.forward(...)`: forward."""
    def present(
        self, state: Any, req: types.Request, resp: types.Response, body: bytes
    ) -> bytes | bytearray | str | None:
        """Transform the buffered body. None: keep it; bytes (or str, sent as
        UTF-8): the new body. Also called for a directive when the class
        has no `directive`."""
    def directive(
        self, state: Any, req: types.Request, resp: types.Response, body: bytes, directive: Directive
    ) -> bytes | bytearray | str | None:
        """Present, for a static file whose `!>` line names one of
        `directives`: `directive.name` and its `args`. Returns what present
        does. Defining it exports present."""
    def package(self, state: Any, req: types.Request, resp: types.Response) -> None:
        """Adjust the headers of every response, errors and cache hits
        included."""
    def post(
        self, state: Any, req: types.Request, resp: types.Response, done: types.Completion
    ) -> None:
        """After the response is written; `req` and `resp` are read-only."""

def export(cls: type[_P]) -> type[_P]:
    """Registers the plugin class; call once, at the end of the module."""

def implemented(cls: type) -> list[str]:
    """The phases a plugin class defines (`directive` counts as present)."""
