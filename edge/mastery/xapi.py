"""xAPI 1.0.3 statements from Chromebook content: validation that names the bad field, and evidence.

Evidence is a statement whose verb is answered/passed/failed/completed and whose result has `success`;
the student is `actor.account.name`, the skill comes from the lesson manifest's activity → skill mapping,
else the statement's context: the extension SKILL_EXTENSION, or a context activity of type OBJECTIVE_TYPE.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeGuard

from edge.exc import EdgeError
from edge.mastery.replay import parse_timestamp
from edge.sync.snapshots import skill_iri

EVIDENCE_VERBS = frozenset({"answered", "passed", "failed", "completed"})
SKILL_EXTENSION = "https://w3id.org/xapi/classroom-edge/extensions/skill"
OBJECTIVE_TYPE = "http://adlnet.gov/expapi/activities/objective"
TOP_LEVEL = frozenset({"id", "actor", "verb", "object", "result", "context", "timestamp", "stored",
                       "authority", "version", "attachments"})
AGENT_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")


class StatementError(EdgeError):
    """An invalid statement or evidence item; `field` is the JSON path of the offending value."""

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


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


def _str(value: Any, field: str, iri: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise StatementError(field, "must be a non-empty string")
    if iri and ":" not in value:
        raise StatementError(field, "must be an IRI")
    return value


def _timestamp(value: Any, field: str) -> int:
    if not isinstance(value, str):
        raise StatementError(field, "must be an ISO 8601 string")
    try:
        if "T" not in value:
            raise ValueError
        return to_us(parse_timestamp(value))
    except ValueError:
        raise StatementError(field, f"must be an ISO 8601 timestamp, got {value!r}") from None


def _agent(value: Any, field: str) -> None:
    actor = _obj(value, field)
    kind = actor.get("objectType", "Agent")
    if kind not in ("Agent", "Group"):
        raise StatementError(f"{field}.objectType", "must be Agent or Group")
    ifis = [k for k in AGENT_IFIS if k in actor]
    if kind == "Agent" and len(ifis) != 1:
        raise StatementError(field, "must have exactly one of mbox, mbox_sha1sum, openid, account")
    if "account" in actor:
        account = _obj(actor["account"], f"{field}.account")
        _str(account.get("homePage"), f"{field}.account.homePage", iri=True)
        _str(account.get("name"), f"{field}.account.name")


def validate_statement(value: Any, field: str) -> dict[str, Any]:
    """Check the parts of a statement we rely on (and reject unknown top-level properties, as xAPI asks)."""
    st = dict(_obj(value, field))
    for key in st:
        if key not in TOP_LEVEL:
            raise StatementError(f"{field}.{key}", "is not an xAPI statement property")
    if "id" in st:
        sid = _str(st["id"], f"{field}.id")
        try:
            if str(uuid.UUID(sid)) != sid.lower():
                raise ValueError
        except ValueError:
            raise StatementError(f"{field}.id", "must be a UUID") from None
        st["id"] = sid.lower()
    if "actor" not in st:
        raise StatementError(f"{field}.actor", "is required")
    _agent(st["actor"], f"{field}.actor")
    verb = _obj(st.get("verb"), f"{field}.verb")
    _str(verb.get("id"), f"{field}.verb.id", iri=True)
    obj = _obj(st.get("object"), f"{field}.object")
    if obj.get("objectType", "Activity") == "Activity":
        _str(obj.get("id"), f"{field}.object.id", iri=True)
    if "result" in st:
        result = _obj(st["result"], f"{field}.result")
        if "success" in result and not isinstance(result["success"], bool):
            raise StatementError(f"{field}.result.success", "must be true or false")
    if "context" in st:
        _obj(st["context"], f"{field}.context")
    if "timestamp" in st:
        _timestamp(st["timestamp"], f"{field}.timestamp")
    return st


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
    if skill is None:
        return None
    ts = _timestamp(st["timestamp"], "timestamp") if "timestamp" in st else stored_us
    return Evidence(str(st["id"]), str(account["name"]), skill, bool(result["success"]), ts)


def parse_compact(value: Any, field: str) -> Evidence:
    """One `{id, student, skill, correct, timestamp}` item of POST /api/v1/evidence."""
    item = _obj(value, field)
    for key in item:
        if key not in ("id", "student", "skill", "correct", "timestamp"):
            raise StatementError(f"{field}.{key}", "unknown field (known: id, student, skill, correct, timestamp)")
    ident = _str(item.get("id"), f"{field}.id")
    student = _str(item.get("student"), f"{field}.student")
    skill = _str(item.get("skill"), f"{field}.skill")
    correct = item.get("correct")
    if correct not in (True, False, 0, 1) or isinstance(correct, float):
        raise StatementError(f"{field}.correct", "must be true, false, 0 or 1")
    ts_raw = item.get("timestamp")
    if isinstance(ts_raw, bool) or not isinstance(ts_raw, int | float | str):
        raise StatementError(f"{field}.timestamp", "must be ISO 8601 or epoch seconds")
    try:
        ts = to_us(parse_timestamp(repr(ts_raw) if not isinstance(ts_raw, str) else ts_raw))
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

