"""The one exception tree of the appliance (every error a user can see is defined here).

The CLI turns any EdgeError into `edge: error: ...`, exit 1; the HTTP services turn a RequestError into the
one JSON error shape (edge.serving.errors). Anything else escaping is a bug and shows as one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from edge_native import NativeFallbackWarning

__all__ = [
    "ConfigError", "CsvFileError", "EdgeError", "EventsFileError", "GroupingError", "ListenError", "ManifestError",
    "MasteryUnavailable", "NativeFallbackWarning", "NoGPIOWarning", "PlanError", "PlanErrors", "RequestError",
    "RosterError", "RotationError", "StateError", "StatementError", "TargetError", "UpstreamError",
]


class EdgeError(Exception):
    """Base of every error the appliance reports to a user (CLI, HTTP, logs) rather than as a traceback."""


class ConfigError(EdgeError, ValueError):
    """A configuration or plan file is invalid; the message names the file, the key and the reason."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        super().__init__(f"{file}: {key}: {reason}" if key else f"{file}: {reason}")


class PlanError(ConfigError):
    """A rotation plan is invalid (same message shape as ConfigError)."""


class PlanErrors(PlanError):
    """Several problems in one plan, all found in one pass (the form shows each beside its field); `key` and
    `reason` are the first one's, the message lists them all."""

    def __init__(self, errors: list[PlanError]) -> None:
        first = errors[0]
        super().__init__(first.file, first.key, first.reason)
        self.errors = errors
        self.args = (f"{first.file}: " + "; ".join(f"{e.key}: {e.reason}" if e.key else e.reason for e in errors),)


class RotationError(EdgeError):
    """A teacher action that does not apply in the current state (e.g. pause when nothing runs)."""


class StateError(EdgeError):
    """Persisted state could not be read or written."""


class ListenError(EdgeError):
    """A service cannot bind its address (the port is taken, the address is not this host's, ...)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host, self.port, self.reason = host, port, reason
        super().__init__(f"cannot listen on {host}:{port}: {reason}")


class RequestError(EdgeError):
    """A request refused with a 4xx (the one JSON error shape: error, status, and key/reason when a field).

    `key` names the offending field, parameter or header; `headers` go on the response (Allow, Retry-After...).
    """

    def __init__(self, status: int, message: str, *, key: str | None = None, reason: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status, self.message, self.key, self.reason = status, message, key, reason
        self.headers = dict(headers or {})
        super().__init__(message)


class StatementError(RequestError, ValueError):
    """An invalid xAPI statement or evidence item (400); `field` is the JSON path of the offending value."""

    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        self.field = field
        super().__init__(status, f"{field}: {reason}", key=field, reason=reason)


class TargetError(RequestError):
    """A lesson-cache request target that must be refused (unknown origin, traversal, ...)."""


UpstreamKind = Literal["down", "stall", "reset", "invalid", "status", "short", "verify"]


class UpstreamError(EdgeError):
    """An origin could not deliver: unreachable/refused (down), stalled, connection broken before the response
    (reset), a malformed response (invalid), an unusable status, short body, failed verify."""

    def __init__(self, kind: UpstreamKind, message: str) -> None:
        super().__init__(message)
        self.kind: UpstreamKind = kind
        self.message = message


class ManifestError(EdgeError, ValueError):
    """A prefetch/lesson manifest that cannot be used; the message says which item and why."""


class RosterError(EdgeError):
    """A roster file is missing or invalid; the message names the file, line and column."""

    def __init__(self, file: str, reason: str, line: int | None = None, column: str | None = None) -> None:
        self.file, self.reason, self.line, self.column = file, reason, line, column
        where = file + (f" line {line}" if line else "") + (f" column {column}" if column else "")
        super().__init__(f"roster: {where}: {reason}")


class CsvFileError(EdgeError, ValueError):
    """A CSV file that cannot be read as its table; the message names the file and the line (0: the whole file)."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        self.file, self.line, self.reason = file, line, reason
        super().__init__(f"{file}: line {line}: {reason}" if line else f"{file}: {reason}")


class EventsFileError(CsvFileError):
    """A malformed evidence events file (edge mastery replay)."""


class GroupingError(EdgeError, ValueError):
    """Input a regrouping proposal cannot be made from (bad bounds, unknown skill, impossible sizes, conflicting
    constraints)."""


class MasteryUnavailable(GroupingError):
    """The mastery service did not answer (the regrouping page reads mastery from it over HTTP)."""


class NoGPIOWarning(UserWarning):
    """This host has no GPIO pin library; cues run on gpiozero's mock pins."""
