"""The host's log (wit: kavro:plugin/log). Always available; never raises.
`kavro.debug/info/warn/error(message)` are the short forms of `log`."""

from . import types

def log(level: types.Level, message: str) -> None:
    """Writes `message` (cut at 16 KiB) to the host's log, tagged with the
    plugin's name and the request id."""

def fail(seq: int, message: str) -> None:
    """Reports a failure of the plugin's code on request `seq`: the host
    shows `message` in its log and on `GET /plugins`, and the call fails
    under the plugin's failure policy. The SDK calls it for an exception
    that escapes a phase; plugins rarely need to."""
