"""The teacher PIN: IT's `[web] teacher_pin`, else one a teacher set on the unit with the one-time setup code.

No default PIN ever ships. The first boot of an imaged unit writes a setup code next to edge.toml
(edge.image.status.SETUP_FILE, `{"code": "8 digits", "id": "16 hex", ...}`); while no PIN is set the station
board shows the code (being in the room is the authority) and /teacher asks for it with a new PIN. The PIN is
kept here as a salted scrypt hash, with the setup id it was set under: deleting the setup file on the unit
and rebooting makes a new code with a new id, which lets someone in the room set the PIN again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from edge.config import EdgeConfig
from edge.exc import RequestError
from edge.fsutil import atomic_write
from edge.image.status import SETUP_FILE
from edge.serving.auth import secret_ok

log = logging.getLogger(__name__)
PIN_RE = re.compile(r"[0-9]{4,12}")
PIN_FILE = "teacher-pin.json"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~50 ms on a Pi 4: cheap for one login, slow for a guesser


@dataclass(frozen=True)
class SetupCode:
    code: str
    id: str


@dataclass(frozen=True)
class Pin:
    """The PIN in force and how to check one; `material` changes with the PIN (sessions are bound to it)."""

    source: str  # "config" (edge.toml) or "unit" (set with the setup code)
    material: str  # the configured PIN, or the stored hash
    salt: str = ""

    def matches(self, pin: str) -> bool:
        if self.source == "config":
            return secret_ok(pin, self.material)
        return secret_ok(_hash(pin, bytes.fromhex(self.salt)).hex(), self.material)


def _hash(pin: str, salt: bytes) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, dklen=32, **_SCRYPT)


class TeacherPin:
    """Where the unit's teacher PIN comes from, and setting it with the setup code."""

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self.path = config.state_dir / PIN_FILE
        self.setup_path = None if config.config_dir is None else config.config_dir / SETUP_FILE

    def setup_code(self) -> SetupCode | None:
        """The first boot's setup code (None where there is none, or it cannot be read)."""
        if self.setup_path is None:
            return None
        try:
            doc = json.loads(self.setup_path.read_text())
            code, ident = str(doc["code"]), str(doc["id"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return SetupCode(code, ident) if re.fullmatch(r"[0-9]{8}", code) and ident else None

    def _stored(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.path.read_text())
            bytes.fromhex(doc["salt"])
            if not isinstance(doc["hash"], str) or not isinstance(doc["setup_id"], str):
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return dict(doc)

    def current(self) -> Pin | None:
        """The PIN in force, None when no teacher PIN is set (teacher control waits for setup, or for IT)."""
        if self.config.web.teacher_pin:
            return Pin("config", self.config.web.teacher_pin)
        stored = self._stored()
        if stored is None:
            return None
        setup = self.setup_code()
        if setup is not None and setup.id != stored["setup_id"]:
            return None  # the setup file was remade (a reset by someone in the room): set the PIN again
        return Pin("unit", stored["hash"], stored["salt"])

    def awaiting_setup(self) -> SetupCode | None:
        """The setup code to show on the board and ask for on /teacher: only while no PIN is in force."""
        return self.setup_code() if self.current() is None else None

    def set_with_code(self, code: str, pin: str, confirm: str) -> None:
        """Set the PIN with the setup code (RequestError naming the field when something is wrong)."""
        setup = self.awaiting_setup()
        if setup is None:
            raise RequestError(409, "a teacher PIN is already set on this unit (or it has no setup code)")
        if not secret_ok(code.replace(" ", "").strip(), setup.code):
            raise RequestError(401, "that is not the setup code shown on the station board", key="code")
        if not PIN_RE.fullmatch(pin):
            raise RequestError(400, "the PIN is 4 to 12 digits", key="pin")
        if pin != confirm:
            raise RequestError(400, "the two PINs differ", key="confirm")
        salt = secrets.token_bytes(16)
        doc = {"version": 1, "hash": _hash(pin, salt).hex(), "salt": salt.hex(), "setup_id": setup.id}
        atomic_write(self.path, json.dumps(doc).encode(), mode=0o600)
        log.info("teacher PIN set on the unit with the setup code (id %s)", setup.id)
