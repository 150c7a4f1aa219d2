"""The unit id: one stable id per unit that every process of the unit computes alike.

Choice: an app-specific hash of /etc/machine-id (HMAC-SHA256 keyed by the machine id over a fixed
application id, the scheme of systemd's `sd_id128_get_machine_app_specific`), formatted as 32 hex digits.
- Every service of the unit agrees without sharing a file: the three services run with DynamicUser and
  private state directories, but all can read /etc/machine-id.
- It survives upgrades, reinstalls of the venv and a wiped state directory; it changes when the card is
  re-imaged, which is a new unit from IT's point of view.
- The raw machine id never leaves the unit (it is meant to stay confidential; the hash cannot be reversed).
The image must ship an empty /etc/machine-id so that each card gets its own on first boot.
Overrides: `[unit] id = "..."` in edge.toml. Without a usable machine id (a container), a random id is
generated once into `<state_dir>/unit-id`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from pathlib import Path

from edge.config import EdgeConfig
from edge.fsutil import atomic_write

# a fixed, random application id: changing it changes every unit's id
APP_ID = bytes.fromhex("5c1a0e7d2b8f4c6a9e3d11f04b7a2c58")
MACHINE_ID = Path("/etc/machine-id")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_UNSAVED: dict[str, str] = {}  # ids generated where they could not be written, per fallback path
log = logging.getLogger(__name__)


def app_specific_id(machine_id: str) -> str:
    """32 hex digits derived from a machine id (itself 32 hex digits)."""
    return hmac.new(bytes.fromhex(machine_id), APP_ID, hashlib.sha256).hexdigest()[:32]


def unit_id(config: EdgeConfig, machine_id_file: Path = MACHINE_ID) -> str:
    """This unit's id (see the module docstring for where it comes from)."""
    if config.unit.id:
        return config.unit.id
    try:
        mid = machine_id_file.read_text().strip().lower()
    except OSError:
        mid = ""
    if _HEX32.fullmatch(mid):
        return app_specific_id(mid)
    fallback = config.state_dir / "unit-id"
    try:
        saved = fallback.read_text().strip()
        if _HEX32.fullmatch(saved):
            return saved
    except OSError:
        pass
    key = str(fallback)
    if key not in _UNSAVED:
        new = secrets.token_hex(16)
        try:
            atomic_write(fallback, (new + "\n").encode())
            return new
        except OSError as e:
            # still one id for this process's life (a heartbeat a new unit each time would fill the collector)
            log.warning("no /etc/machine-id and cannot keep a unit id in %s (%s): set [unit] id", fallback, e)
            _UNSAVED[key] = new
    return _UNSAVED[key]
