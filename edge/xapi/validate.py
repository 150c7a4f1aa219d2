"""Statement validation to xAPI 1.0.3 (the ADL LRS conformance suite is the checklist), by part: verb,
object (Activity, Agent, Group, StatementRef, SubStatement), result, context, attachments, authority.

`statement(value, field)` returns the statement to store: a fresh top-level dict with context activities
normalised to arrays (the spec's one form), everything else exactly as sent. Invalid input raises
StatementError naming the JSON path, which the service answers with 400.
"""

from __future__ import annotations

from typing import Any

from edge.exc import StatementError
from edge.xapi import agents
from edge.xapi import fields as f
from edge.xapi.activities import activity
from edge.xapi.formats import (
    is_duration,
    is_iri,
    is_language_tag,
    is_media_type,
    is_sha2,
    is_version,
    parse_timestamp,
)

VOIDED = "http://adlnet.gov/expapi/verbs/voided"
TOP_LEVEL = frozenset({"id", "actor", "verb", "object", "result", "context", "timestamp", "stored",
                       "authority", "version", "attachments"})
SUB_KEYS = frozenset({"objectType", "actor", "verb", "object", "result", "context", "timestamp", "attachments"})
VERB_KEYS = frozenset({"id", "display"})
REF_KEYS = frozenset({"objectType", "id"})
RESULT_KEYS = frozenset({"score", "success", "completion", "response", "duration", "extensions"})
SCORE_KEYS = frozenset({"scaled", "raw", "min", "max"})
CONTEXT_KEYS = frozenset({"registration", "instructor", "team", "contextActivities", "revision", "platform",
                          "language", "statement", "extensions"})
CONTEXT_ACTIVITY_KEYS = ("parent", "grouping", "category", "other")
ATTACHMENT_KEYS = frozenset({"usageType", "display", "description", "contentType", "length", "sha2", "fileUrl"})
ATTACHMENT_REQUIRED = ("usageType", "display", "contentType", "length", "sha2")
MAX_ATTACHMENTS = 100
MAX_CONTEXT_ACTIVITIES = 100


def statement(value: Any, field: str) -> dict[str, Any]:
    """A validated, normalised copy of one statement."""
    st = dict(f.keys(value, field, TOP_LEVEL))
    if "id" in st:
        st["id"] = f.uuid(st["id"], f"{field}.id").lower()
    _body(st, field, sub=False)
    if "authority" in st:
        _authority(st["authority"], f"{field}.authority")
    if "version" in st and (type(st["version"]) is not str or not is_version(st["version"])):
        raise StatementError(f"{field}.version", "must be a 1.0.x version")
    if "stored" in st:
        _timestamp(st["stored"], f"{field}.stored")
    return st


def _body(st: dict[str, Any], field: str, *, sub: bool) -> None:
    """What statements and sub-statements share: actor, verb, object, result, context, timestamp, attachments."""
    agents.actor(_required(st, "actor", field), f"{field}.actor")
    verb = f.keys(_required(st, "verb", field), f"{field}.verb", VERB_KEYS, ("id",))
    f.iri(verb["id"], f"{field}.verb.id")
    if "display" in verb:
        f.language_map(verb["display"], f"{field}.verb.display")
    kind = _object(_required(st, "object", field), f"{field}.object", sub=sub)
    if verb["id"] == VOIDED and kind != "StatementRef":
        raise StatementError(f"{field}.object", "a voiding statement's object must be a StatementRef")
    if "result" in st:
        _result(st["result"], f"{field}.result")
    if "context" in st:
        st["context"] = _context(st["context"], f"{field}.context", kind)
    if "timestamp" in st:
        _timestamp(st["timestamp"], f"{field}.timestamp")
    if "attachments" in st:
        f.each(st["attachments"], f"{field}.attachments", MAX_ATTACHMENTS, "attachments", _attachment)


def _required(st: dict[str, Any], key: str, field: str) -> Any:
    if key not in st:
        raise StatementError(f"{field}.{key}", "is required")
    return st[key]


def _object(value: Any, field: str, *, sub: bool) -> str:
    d = f.obj(value, field)
    kind = d.get("objectType", "Activity")
    if kind == "Activity":
        activity(d, field)
    elif kind == "Agent":
        agents.agent(d, field)
    elif kind == "Group":
        agents.group(d, field)
    elif kind == "StatementRef":
        ref = f.keys(d, field, REF_KEYS, REF_KEYS)
        f.uuid(ref["id"], f"{field}.id")
    elif kind == "SubStatement":
        if sub:
            raise StatementError(f"{field}.objectType", "a SubStatement cannot contain a SubStatement")
        substatement = f.keys(d, field, SUB_KEYS)
        _body(substatement, field, sub=True)  # (normalises its context in place: the dict is the request's)
    else:
        raise StatementError(f"{field}.objectType",
                             "must be Activity, Agent, Group, StatementRef or SubStatement (case matters)")
    return str(kind)


def _result(value: Any, field: str) -> None:
    r = f.keys(value, field, RESULT_KEYS)
    f.each_present(r, field, {"score": _score, "success": f.boolean, "completion": f.boolean,
                              "response": f.string, "duration": _duration, "extensions": f.extensions})


def _duration(value: Any, field: str) -> None:
    if type(value) is not str or not is_duration(value):
        raise StatementError(field, "must be an ISO 8601 duration (e.g. PT1M30S)")


def _score(value: Any, field: str) -> None:
    s = f.keys(value, field, SCORE_KEYS)
    nums = {k: f.number(v, f"{field}.{k}") for k, v in s.items()}
    if "scaled" in nums and not -1.0 <= nums["scaled"] <= 1.0:
        raise StatementError(f"{field}.scaled", "must be between -1 and 1")
    lo, hi, raw = nums.get("min"), nums.get("max"), nums.get("raw")
    if lo is not None and hi is not None and hi <= lo:
        raise StatementError(f"{field}.max", "must be greater than min")
    if raw is not None and ((lo is not None and raw < lo) or (hi is not None and raw > hi)):
        raise StatementError(f"{field}.raw", "must be between min and max")


def _context(value: Any, field: str, object_kind: str) -> dict[str, Any]:
    c = f.keys(value, field, CONTEXT_KEYS)
    f.each_present(c, field, {"registration": f.uuid, "instructor": agents.actor, "team": agents.group,
                              "extensions": f.extensions})
    for k in ("revision", "platform"):
        if k in c:
            f.string(c[k], f"{field}.{k}")
            if object_kind != "Activity":
                raise StatementError(f"{field}.{k}", "is only allowed when the object is an Activity")
    if "language" in c:
        f.string(c["language"], f"{field}.language")
        if not is_language_tag(c["language"]):
            raise StatementError(f"{field}.language", "must be an RFC 5646 language tag")
    if "statement" in c:
        ref = f.keys(c["statement"], f"{field}.statement", REF_KEYS, REF_KEYS)
        if ref["objectType"] != "StatementRef":
            raise StatementError(f"{field}.statement.objectType", "must be \"StatementRef\"")
        f.uuid(ref["id"], f"{field}.statement.id")
    if "contextActivities" in c:
        ca = f.keys(c["contextActivities"], f"{field}.contextActivities", frozenset(CONTEXT_ACTIVITY_KEYS))
        normal: dict[str, Any] = {}
        for k, v in ca.items():
            items = v if type(v) is list else [v]
            if len(items) > MAX_CONTEXT_ACTIVITIES:
                raise StatementError(f"{field}.contextActivities.{k}", f"at most {MAX_CONTEXT_ACTIVITIES} activities")
            for i, a in enumerate(items):
                activity(a, f"{field}.contextActivities.{k}[{i}]" if v is items else f"{field}.contextActivities.{k}")
            normal[k] = items
        if any(type(v) is not list for v in ca.values()):
            c = {**c, "contextActivities": normal}
    return c


def _timestamp(value: Any, field: str) -> None:
    if type(value) is not str or parse_timestamp(value) is None:
        raise StatementError(field, "must be an ISO 8601 date and time (e.g. 2024-05-01T10:00:00Z; not -00:00)")


def _attachment(value: Any, field: str) -> None:
    a = f.keys(value, field, ATTACHMENT_KEYS, ATTACHMENT_REQUIRED)
    f.iri(a["usageType"], f"{field}.usageType")
    f.language_map(a["display"], f"{field}.display")
    if "description" in a:
        f.language_map(a["description"], f"{field}.description")
    if type(a["contentType"]) is not str or not is_media_type(a["contentType"]):
        raise StatementError(f"{field}.contentType", "must be an Internet media type (type/subtype)")
    if type(a["length"]) is not int or a["length"] < 0:
        raise StatementError(f"{field}.length", "must be a non-negative integer")
    if type(a["sha2"]) is not str or not is_sha2(a["sha2"]):
        raise StatementError(f"{field}.sha2", "must be the hex digest of a SHA-2 hash")
    if "fileUrl" in a and not is_iri(f.string(a["fileUrl"], f"{field}.fileUrl")):
        raise StatementError(f"{field}.fileUrl", "must be an IRL")


def _authority(value: Any, field: str) -> None:
    """An Agent, or (OAuth) an anonymous Group of exactly two Agents."""
    d = agents.actor(value, field)
    if d.get("objectType") == "Group" and (agents.ifi_key(d) is not None or len(d.get("member", [])) != 2):
        raise StatementError(field, "a Group authority must be anonymous with exactly two members (OAuth)")
