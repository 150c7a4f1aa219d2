"""Teacher sessions the server knows: a signed cookie alone is not enough to be the teacher.

Logging out forgets the session on the server, so a copy of the old cookie opens nothing; a changed PIN
makes every session made with the old one invalid. Kept in `<state_dir>/web-sessions.json` (atomic writes),
so teachers stay logged in across a restart; at most MAX_SESSIONS, the oldest forgotten first.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from pathlib import Path
from typing import Literal

from edge.fsutil import atomic_write

log = logging.getLogger(__name__)

FILE_NAME = "web-sessions.json"
MAX_SESSIONS = 64
Validity = Literal["ok", "expired", "none"]


class SessionRegistry:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[float, str]] = self._load()  # sid -> (since, PIN fingerprint)

    def _load(self) -> dict[str, tuple[float, str]]:
        try:
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: everyone logs in again, nothing worse
        if not isinstance(doc, dict):
            return {}
        return {str(sid): (float(v[0]), str(v[1])) for sid, v in doc.items()
                if isinstance(v, list) and len(v) == 2 and isinstance(v[0], int | float)}

    def _save(self) -> None:
        data = {sid: [since, pin] for sid, (since, pin) in self._sessions.items()}
        try:
            atomic_write(self.path, json.dumps(data).encode(), mode=0o600)
        except OSError as e:  # read-only or full: sessions hold in memory until the next restart
            log.error("cannot save the teacher sessions to %s: %s", self.path, e.strerror)

    def create(self, since: float, pin_fingerprint: str) -> str:
        """A new session id for a teacher who just entered the PIN."""
        sid = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[sid] = (since, pin_fingerprint)
            while len(self._sessions) > MAX_SESSIONS:
                del self._sessions[min(self._sessions, key=lambda s: self._sessions[s][0])]
            self._save()
        return sid

    def check(self, sid: object, pin_fingerprint: str, now: float, max_age_s: float) -> Validity:
        """ok, expired (too old, clock set back, PIN changed, or logged out elsewhere) or none (no session)."""
        if not isinstance(sid, str):
            return "none"
        with self._lock:
            found = self._sessions.get(sid)
        if found is None:
            return "expired"
        since, pin = found
        age = now - since
        if pin != pin_fingerprint or age > max_age_s or age < -300:  # far-future: the clock was set back
            return "expired"
        return "ok"

    def revoke(self, sid: object) -> None:
        with self._lock:
            if isinstance(sid, str) and self._sessions.pop(sid, None) is not None:
                self._save()
