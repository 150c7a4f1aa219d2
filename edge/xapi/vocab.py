"""The appliance's own xAPI vocabulary: evidence (which statements are scored responses), compact evidence,
and every statement the unit builds itself (compact evidence, mastery snapshots). Sync only transports them.

Evidence is a statement whose verb is answered/passed/failed/completed and whose result has `success`;
the student is `actor.account.name`, the skill comes from the lesson manifest's activity → skill mapping,
else the statement's context: the extension SKILL_EXTENSION, or a context activity of type OBJECTIVE_TYPE.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeGuard
from urllib.parse import quote

from edge import __version__
from edge.config import UnitConfig
from edge.exc import StatementError
from edge.limits import EVIDENCE_ID_MAX, SKILL_MAX, STUDENT_ID_MAX, name_problem
from edge.xapi.formats import parse_event_time, parse_timestamp, timestamp_us

EVIDENCE_VERBS = frozenset({"answered", "passed", "failed", "completed"})
BASE = "https://w3id.org/xapi/classroom-edge"
SKILL_EXTENSION = f"{BASE}/extensions/skill"
MASTERY_EXTENSION = f"{BASE}/extensions/mastery"
SCHOOL_EXTENSION = f"{BASE}/extensions/school"
ROOM_EXTENSION = f"{BASE}/extensions/room"
SNAPSHOT_VERB = {"id": f"{BASE}/verbs/estimated-mastery", "display": {"en-US": "estimated mastery of"}}
OBJECTIVE_TYPE = "http://adlnet.gov/expapi/activities/objective"
XAPI_VERSION = "1.0.3"
AUTH_USER = "class"
AUTHORITY = {"objectType": "Agent", "account": {"homePage": "urn:classroom-edge", "name": AUTH_USER}}


@dataclass(frozen=True)
class Evidence:
    """One scored response, as the mastery model and the evidence table hold it."""

    id: str
    student: str
    skill: str
    correct: bool
    ts_us: int  # microseconds since the epoch: exact ordering with the id as tie-break


def to_us(ts: Decimal) -> int:
    return int((ts * 1_000_000).to_integral_value())


def canonical(obj: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces, UTF-8 as is): what `digest` hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj: Any) -> str:
    """Content hash of canonical JSON: equal for the same statement re-sent, whatever the key order."""
    return digest_text(canonical(obj))


def digest_text(text: str) -> str:
    """`digest` of an object whose `canonical` text is `text`."""
    return hashlib.sha256(text.encode()).hexdigest()


def _is_map(value: object) -> TypeGuard[Mapping[str, Any]]:
    return type(value) is dict or isinstance(value, Mapping)  # JSON gives dicts: skip the ABC check for them


def _obj(value: Any, field: str) -> Mapping[str, Any]:
    if not _is_map(value):
        raise StatementError(field, "must be a JSON object")
    return value


def _str(value: Any, field: str, max_len: int) -> str:
    """A non-empty name of at most `max_len` characters, without control or text-direction characters."""
    if reason := name_problem(value, "it", max_len):
        raise StatementError(field, reason.removeprefix("it "))
    return str(value)


def _context_skill(context: Mapping[str, Any]) -> str | None:
    ext = context.get("extensions")
    if _is_map(ext) and isinstance(ext.get(SKILL_EXTENSION), str) and ext[SKILL_EXTENSION]:
        return str(ext[SKILL_EXTENSION])
    activities = context.get("contextActivities")
    if _is_map(activities):
        for group in ("category", "other", "parent", "grouping"):
            items = activities.get(group)
            for item in items if isinstance(items, list) else [items] if _is_map(items) else []:
                definition = item.get("definition") if _is_map(item) else None
                if _is_map(definition) and definition.get("type") == OBJECTIVE_TYPE:
                    ident = item.get("id")
                    if isinstance(ident, str) and ident:
                        return ident
    return None


def evidence_of(st: Mapping[str, Any], stored_us: int, activity_skills: Mapping[str, str]) -> Evidence | None:
    """The scored response in a validated statement, or None when it carries no usable evidence."""
    verb_id = str(st["verb"]["id"]).rstrip("/")
    if verb_id.rsplit("/", 1)[-1] not in EVIDENCE_VERBS:
        return None
    result = st.get("result")
    if not _is_map(result) or not isinstance(result.get("success"), bool):
        return None
    account = st["actor"].get("account") if _is_map(st["actor"]) else None
    if not _is_map(account):
        return None
    obj = st["object"]
    skill = activity_skills.get(str(obj.get("id", ""))) if _is_map(obj) else None
    if skill is None and _is_map(st.get("context")):
        skill = _context_skill(st["context"])
    student = account.get("name")
    if skill is None or name_problem(student, max_len=STUDENT_ID_MAX) or name_problem(skill, max_len=SKILL_MAX):
        return None  # stored and forwarded as xAPI, but no evidence: the model keeps only bounded names
    ts = stored_us
    if "timestamp" in st:
        when = parse_timestamp(st["timestamp"])
        if when is None:
            raise StatementError("timestamp", "must be an ISO 8601 date and time")
        ts = timestamp_us(when)
    return Evidence(str(st["id"]), str(student), skill, bool(result["success"]), ts)


def parse_compact(value: Any, field: str) -> Evidence:
    """One `{id, student, skill, correct, timestamp}` item of POST /api/v1/evidence."""
    item = _obj(value, field)
    for key in item:
        if key not in ("id", "student", "skill", "correct", "timestamp"):
            raise StatementError(f"{field}.{key}", "unknown field (known: id, student, skill, correct, timestamp)")
    ident = _str(item.get("id"), f"{field}.id", EVIDENCE_ID_MAX)
    student = _str(item.get("student"), f"{field}.student", STUDENT_ID_MAX)
    skill = _str(item.get("skill"), f"{field}.skill", SKILL_MAX)
    correct = item.get("correct")
    if type(correct) not in (bool, int, float) or correct not in (0, 1):  # JSON Schema: 1.0 is 1
        raise StatementError(f"{field}.correct", "must be true, false, 0 or 1")
    ts_raw = item.get("timestamp")
    if isinstance(ts_raw, bool) or not isinstance(ts_raw, int | float | str):
        raise StatementError(f"{field}.timestamp", "must be ISO 8601 or epoch seconds")
    try:
        ts = to_us(parse_event_time(repr(ts_raw) if not isinstance(ts_raw, str) else ts_raw))
    except ValueError:
        raise StatementError(f"{field}.timestamp", f"must be ISO 8601 or epoch seconds, got {ts_raw!r}") from None
    return Evidence(ident, student, skill, bool(correct), ts)


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_EVIDENCE_NS = uuid.UUID("0b6f3f7e-8c1d-5a3e-9f57-2d4c6e8a1b3f")
ANSWERED = {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}}


def evidence_statement(ev: Evidence, home_page: str) -> dict[str, Any]:
    """The xAPI statement the district receives for a compact `/api/v1/evidence` item.

    Its id is a UUIDv5 of the item id, so the same item always makes the same statement (exactly once at the
    LRS however often it is re-sent).
    """
    return {
        "id": str(uuid.uuid5(_EVIDENCE_NS, ev.id)),
        "actor": {"objectType": "Agent", "account": {"homePage": home_page, "name": ev.student}},
        "verb": ANSWERED,
        "object": {"objectType": "Activity", "id": skill_iri(ev.skill)},
        "result": {"success": ev.correct},
        "context": {"platform": "classroom-edge", "extensions": {SKILL_EXTENSION: ev.skill}},
        "timestamp": iso(ev.ts_us),
    }


_SNAPSHOT_NS = uuid.UUID("6f0c1d7e-3b1a-5c59-9a57-7c2e4a9b0d11")


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
    sid = uuid.uuid5(_SNAPSHOT_NS, "\x1f".join((home_page, student, skill, timestamp)))
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
