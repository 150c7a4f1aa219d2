"""The provisioning status a unit's first-boot step leaves in /etc/classroom-edge/provision.json (0644, no
secrets), read by `edge doctor` and by the rotation service (fault cue).

Contract (version 1):
    {"version": 1,
     "state": "ok" | "fault" | "unprovisioned",
     "fault": true | false,          # true: the card file seen at the last boot was rejected; the unit runs on
                                     # its previous config. Stays true until a valid file is put on the card
                                     # (or the file is removed). The rotation service shows the fault cue then.
     "reason": "<file>: <key>: <why>" | null,
     "card": "/boot/firmware/classroom-edge.toml",
     "card_sha256": "<sha256 of the file as the unit left it on the card>" | null,
     "hostname": "edge-<school>-<room>" | null,
     "applied_at": "<UTC ISO 8601 of the last good provisioning>" | null,
     "checked_at": "<UTC ISO 8601 of the last boot's check>",
     "generated": ["mastery.class_key", ...],        # secrets made on the unit (never on a card)
     "removed_from_card": ["district.lrs_token", ...]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATUS_FILE = "provision.json"
SETUP_FILE = "teacher-setup.json"


def read_status(etc_dir: Path | None) -> dict[str, Any] | None:
    """The status document, or None when there is none or it cannot be read (a unit never provisioned, or a
    config without a directory: `etc_dir` None)."""
    if etc_dir is None:
        return None
    try:
        doc = json.loads((etc_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
