"""Mastery snapshots as xAPI statements: one per student×skill that changed, queued like any statement.

The mastery service calls `snapshot_statement(...)` (or `snapshot_item(...)` for the outbox pair) for each
cell whose estimate changed since the last snapshot and hands the pairs to `Outbox.add`/`enqueue`.
The statement id is a UUIDv5 of (homePage, student, skill, timestamp): building the same snapshot twice
gives the same id, so a snapshot re-queued after a crash is stored once at the LRS.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from edge import __version__
from edge.config import UnitConfig

BASE = "https://w3id.org/xapi/classroom-edge"
MASTERY_EXTENSION = f"{BASE}/extensions/mastery"
SCHOOL_EXTENSION = f"{BASE}/extensions/school"
ROOM_EXTENSION = f"{BASE}/extensions/room"
SNAPSHOT_VERB = {"id": f"{BASE}/verbs/estimated-mastery", "display": {"en-US": "estimated mastery of"}}
OBJECTIVE_TYPE = "http://adlnet.gov/expapi/activities/objective"
_NAMESPACE = uuid.UUID("6f0c1d7e-3b1a-5c59-9a57-7c2e4a9b0d11")


def skill_iri(skill: str) -> str:
    """Skills that are IRIs stay as they are; plain names get an IRI under this project's namespace."""
    return skill if "://" in skill else f"{BASE}/skills/{quote(skill, safe='')}"


def snapshot_statement(
    *,
    student: str,
    skill: str,
    p_mastery: float,
    evidence_count: int,
    at: datetime,
    home_page: str,
    unit: UnitConfig,
    band: str | None = None,
) -> dict[str, Any]:
    """One xAPI 1.0.3 statement: `student` (pseudonymous sourcedId) has estimated mastery `p_mastery` of `skill`.

    `at` must be timezone-aware; `home_page` is the account homePage the Chromebook content uses for students.
    """
    if not (0.0 <= p_mastery <= 1.0) or math.isnan(p_mastery):
        raise ValueError(f"p_mastery must be within 0..1, got {p_mastery!r}")
    if at.tzinfo is None:
        raise ValueError("snapshot time must be timezone-aware")
    timestamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    sid = uuid.uuid5(_NAMESPACE, "\x1f".join((home_page, student, skill, timestamp)))
    mastery: dict[str, Any] = {"pMastery": round(p_mastery, 6), "evidenceCount": evidence_count,
                               "model": "bkt", "software": f"classroom-edge {__version__}"}
    if band is not None:
        mastery["band"] = band
    context_ext: dict[str, Any] = {ROOM_EXTENSION: unit.room}
    if unit.school:
        context_ext[SCHOOL_EXTENSION] = unit.school
    return {
        "id": str(sid),
        "actor": {"objectType": "Agent", "account": {"homePage": home_page, "name": student}},
        "verb": SNAPSHOT_VERB,
        "object": {
            "objectType": "Activity",
            "id": skill_iri(skill),
            "definition": {"type": OBJECTIVE_TYPE, "name": {"en-US": skill}},
        },
        "result": {"score": {"scaled": round(p_mastery, 4)}, "extensions": {MASTERY_EXTENSION: mastery}},
        "context": {"platform": "classroom-edge", "extensions": context_ext},
        "timestamp": timestamp,
    }


def snapshot_item(**kwargs: Any) -> tuple[str, str]:
    """(statement id, body JSON) for `Outbox.add`/`Outbox.enqueue`; arguments as `snapshot_statement`."""
    st = snapshot_statement(**kwargs)
    return st["id"], json.dumps(st, separators=(",", ":"), ensure_ascii=False)
