"""The rotation's persisted state: one JSON file in the state directory, replaced atomically."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from edge.exc import StateError
from edge.fsutil import atomic_write

log = logging.getLogger(__name__)


class JsonStateFile:
    """A StateStore on disk; a file that does not parse raises StateError (the engine then resets).

    A save that fails (SD card read-only or full) is logged and remembered in `error`, not raised: the timer
    and its cues keep running for the class; /healthz and `edge doctor` report the problem.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None

    def save(self, state: dict[str, Any]) -> None:
        try:
            atomic_write(self.path, json.dumps(state, sort_keys=True).encode())
        except OSError as e:
            if self.error is None:
                log.error("cannot save the rotation state to %s: %s (the timer keeps running)", self.path, e.strerror)
            self.error = f"cannot save the rotation state: {e.strerror}"
        else:
            self.error = None

    def load(self) -> dict[str, Any] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateError(f"cannot read {self.path}: {e.strerror}") from e
        try:
            state = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StateError(f"{self.path} is corrupt: {e}") from e
        if not isinstance(state, dict):
            raise StateError(f"{self.path} is corrupt: not a JSON object")
        return state
