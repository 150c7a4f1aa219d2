"""The one exception tree of the appliance; the CLI turns any EdgeError into `edge: error: ...`, exit 1."""

from __future__ import annotations


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


class RotationError(EdgeError):
    """A teacher action that does not apply in the current state (e.g. pause when nothing runs)."""


class StateError(EdgeError):
    """Persisted state could not be read or written."""


class NativeFallbackWarning(UserWarning):
    """A compiled kernel is missing and its pure-Python twin is used instead."""


class NoGPIOWarning(UserWarning):
    """This host has no GPIO pin library; cues run on gpiozero's mock pins."""
