"""Write Kavro plugins in Python.

Subclass `Plugin`, implement only the phases you need, and register it:

    import kavro

    class Hello(kavro.Plugin):
        name = "hello"
        version = "0.1.0"

        def package(self, state, req, resp):
            resp.set_header("x-hello", "world")

    kavro.export(Hello)

Build it with `sdk/python/kavro-py build hello.py -o hello.wasm`.

Phases and what they return:

- `prime(state, req)`: None to continue, `rewrite("/new?uri")`, or a `Reply`.
- `prepare(state, req)`: None to decline, a `Reply`, or `forward("upstream", ...)`.
- `present(state, req, resp, body)`: None to keep the body, or new `bytes`.
- `directive(state, req, resp, body, directive)`: present, for a static
  file whose `!>` line names a directive in the class's `directives`; as
  present returns. Without it, such a call goes to `present`.
- `package(state, req, resp)` and `post(state, req, resp, done)`: nothing.

`state` is per request: a fresh `self.State()` (a dict by default) for every
request, kept through all of that request's phases. `self` lives as long as
the instance, across requests. The class is instantiated on the instance's
first call, not at build time, so `__init__` may read config and the KV store.
"""

import importlib
import traceback
from dataclasses import dataclass
from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world.imports import cache, clock, config, http, kv, log, metrics, realtime, types

__all__ = [
    "Plugin", "Reply", "Directive", "Err", "export", "rewrite", "forward",
    "cache", "clock", "config", "http", "kv", "log", "metrics", "realtime", "debug", "info", "warn", "error",
]

PHASES = ("prime", "prepare", "present", "package", "post")


def debug(message: str) -> None:
    log.log(types.Level.DEBUG, str(message))


def info(message: str) -> None:
    log.log(types.Level.INFO, str(message))


def warn(message: str) -> None:
    log.log(types.Level.WARN, str(message))


def error(message: str) -> None:
    log.log(types.Level.ERROR, str(message))


def _names(value):
    """A list of names; one name written alone (`directives = "tmpl"`) is one."""
    return [value] if isinstance(value, str) else list(value)


class Plugin:
    """Base class: set `name`, `version`, `capabilities` (and `directives`);
    define phases."""

    name = "plugin"
    version = "0.1.0"
    capabilities: List[str] = []
    # The `!>` file directives the plugin answers ("tmpl"). A plugin that
    # answers any runs in present only where a file names it, and gets
    # `directive(...)` (else `present(...)`) there.
    directives: List[str] = []
    State = dict


@dataclass
class Directive:
    """A `!>` directive that named the plugin, from a static file's first
    line (`!> tmpl header.html &> nonce`: two directives, `tmpl` with one
    argument and `nonce` with none)."""

    name: str
    args: List[str]

    @staticmethod
    def from_args(args) -> Optional["Directive"]:
        """What the host passes to present: the name first, then the
        arguments; None for an ordinary present call."""
        if not args:
            return None
        return Directive(args[0], list(args[1:]))


@dataclass
class Reply:
    """A complete response. `cache_ms` (prepare only, on a route that
    caches): store it this long; `no_store`: never store it."""

    status: int = 200
    body: bytes = b""
    headers: Optional[List[Tuple[str, str]]] = None
    cache_ms: Optional[int] = None
    no_store: bool = False

    def header(self, name: str, value: str) -> "Reply":
        self.headers = (self.headers or []) + [(name, value)]
        return self

    def _wit(self) -> types.Reply:
        body = self.body.encode() if isinstance(self.body, str) else bytes(self.body)
        directive = None
        if self.no_store:
            directive = types.CacheDirective_NoStore()
        elif self.cache_ms is not None:
            directive = types.CacheDirective_TtlMs(self.cache_ms)
        return types.Reply(self.status, list(self.headers or []), body, directive)


@dataclass
class _Rewrite:
    uri: str


@dataclass
class _Forward:
    upstream: str
    uri: Optional[str]
    headers: List[Tuple[str, str]]


def rewrite(uri: str) -> _Rewrite:
    """From prime: route and forward the request as `uri` (path and query)."""
    return _Rewrite(uri)


def forward(upstream: str, uri: Optional[str] = None, headers=None) -> _Forward:
    """From prepare: hand the request to a declared upstream."""
    return _Forward(upstream, uri, list(headers or []))


_class = None
_instance = None
# (seq, state): an instance serves one request from its first phase to its
# post before it serves another.
_slot = (None, None)


def export(cls):
    """Registers the plugin class; call once, at the end of the module."""
    global _class
    _class = cls
    return cls


def _plugin():
    # componentize-py runs the module at build time, where host imports
    # trap: instantiate on the first call instead.
    global _instance
    if _instance is None:
        if _class is None:
            raise RuntimeError("no plugin registered: call kavro.export(YourPlugin)")
        _instance = _class()
    return _instance


def _for(seq):
    """The request's state, fresh for a new `seq` (request)."""
    global _slot
    if _slot[0] != seq:
        _slot = (seq, _plugin().State())
    return _slot[1]


def _wrong(phase, value):
    raise TypeError(f"{phase} returned {value!r}, which it cannot return")


def implemented(cls) -> List[str]:
    """The phases a plugin class defines (used by the build); `directive`
    counts as present."""
    def defines(p):
        if p == "present" and callable(getattr(cls, "directive", None)):
            return True
        return callable(getattr(cls, p, None))
    return [p for p in PHASES if defines(p)]


def _neutral(phase):
    """What a phase returns after reporting an exception: the host applies
    the plugin's failure policy whatever it is."""
    outcome = {"prime": "Outcome_Continue", "prepare": "Outcome_Decline", "present": "Outcome_Keep"}
    if phase not in outcome:
        return None
    # Only the phases the plugin implements are in its world.
    module = importlib.import_module(f"wit_world.exports.{phase}")
    return getattr(module, outcome[phase])()


def _reported(phase):
    """Reports an exception from the plugin (log.fail with its traceback,
    which the host logs, counts and answers with the failure policy) and
    returns, so that the instance, sound after an exception, is kept."""
    def wrap(phase_call):
        def call(self, seq, *args):
            try:
                return phase_call(self, seq, *args)
            except Exception:
                log.fail(seq, traceback.format_exc())
                return _neutral(phase)
        return call
    return wrap


# The classes componentize-py looks for, one per exported interface. The
# build's generated entry module re-exports the ones the plugin implements.

class PluginExport:
    def describe(self) -> types.Manifest:
        p = _plugin()
        return types.Manifest(p.name, p.version, _names(p.capabilities), _names(p.directives))


class PrimeExport:
    @_reported("prime")
    def on_request(self, seq, req):
        from wit_world.exports import prime as w
        out = _plugin().prime(_for(seq), req)
        if out is None:
            return w.Outcome_Continue()
        if isinstance(out, _Rewrite):
            return w.Outcome_Rewrite(out.uri)
        if isinstance(out, Reply):
            return w.Outcome_Respond(out._wit())
        _wrong("prime", out)


class PrepareExport:
    @_reported("prepare")
    def on_prepare(self, seq, req):
        from wit_world.exports import prepare as w
        out = _plugin().prepare(_for(seq), req)
        if out is None:
            return w.Outcome_Decline()
        if isinstance(out, Reply):
            return w.Outcome_Respond(out._wit())
        if isinstance(out, _Forward):
            return w.Outcome_Forward(types.Forward(out.upstream, out.uri, out.headers))
        _wrong("prepare", out)


class PresentExport:
    @_reported("present")
    def on_body(self, seq, req, resp, body, args):
        from wit_world.exports import present as w
        p = _plugin()
        d = Directive.from_args(args)
        if d is not None and callable(getattr(p, "directive", None)):
            method, out = "directive", p.directive(_for(seq), req, resp, body, d)
        elif callable(getattr(p, "present", None)):
            method, out = "present", p.present(_for(seq), req, resp, body)
        else:
            # A plugin with `directive` alone, called without a directive.
            method, out = "present", None
        if out is None:
            return w.Outcome_Keep()
        if isinstance(out, (bytes, bytearray, str)):
            return w.Outcome_Replace(out.encode() if isinstance(out, str) else bytes(out))
        _wrong(method, out)


class PackageExport:
    @_reported("package")
    def on_response(self, seq, req, resp):
        _plugin().package(_for(seq), req, resp)


class PostExport:
    def on_complete(self, batch):
        for c in batch:
            # The handles are owned: drop each request's as soon as it is done.
            with c.req, c.resp:
                try:
                    _plugin().post(_for(c.seq), c.req, c.resp, c.done)
                except Exception:
                    # One request's failure does not cost the rest of the batch.
                    log.fail(c.seq, traceback.format_exc())
