"""Statements as the LRS stores, indexes and serves them: preparing a request's statements (validated,
normalised, encoded once), what a stored statement is indexed by, and the `ids`/`canonical` formats.

Index kinds: the `agent` query parameter matches AGENT rows (the actor, or an Agent/Group object), the
`activity` parameter ACTIVITY rows (an Activity object); with related_agents / related_activities the
*_RELATED rows match too (instructor, team, group members, context activities, sub-statement parts).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.exc import StatementError
from edge.xapi import agents, validate
from edge.xapi.vocab import AUTHORITY, XAPI_VERSION, Evidence, canonical, digest_text, evidence_of, iso

AGENT, AGENT_RELATED, ACTIVITY, ACTIVITY_RELATED = 0, 1, 2, 3
CONTEXT_GROUPS = validate.CONTEXT_ACTIVITY_KEYS


@dataclass(slots=True)
class StatementIndex:
    """What queries find a stored statement by (computed off the writer thread, once)."""

    verb: str
    registration: str | None
    ref: str | None  # the statement a StatementRef object targets
    voids: bool  # a voiding statement: its target becomes voided
    keys: list[tuple[str, int]] = field(default_factory=list)  # (agent IFI key or activity id, kind)
    definitions: list[tuple[str, str]] = field(default_factory=list)  # (activity id, definition JSON)


@dataclass(slots=True)
class Item:
    """One thing to store: an xAPI statement (with its evidence, if any) or a compact evidence item.

    The JSON texts are made by the request handler (off the writer thread), once per item.
    """

    id: str
    digest: str
    body: str | None  # the statement as stored (JSON text); None for compact evidence
    evidence: Evidence | None
    outbound: str = ""  # a statement as the district gets it (JSON text), queued with it; "" for compact evidence
    index: StatementIndex | None = None  # what queries find the statement by


def _agent_keys(value: Mapping[str, Any], kind: int, out: list[tuple[str, int]]) -> None:
    key = agents.ifi_key(value)
    if key is not None:
        out.append((key, kind))
    for m in value.get("member", ()):
        out.append((agents.ifi_key(m) or "", AGENT_RELATED))


def _activities(st: Mapping[str, Any]) -> Iterator[tuple[Mapping[str, Any], bool]]:
    """(activity, is it the object) for every activity of a statement or sub-statement."""
    obj = st["object"]
    if obj.get("objectType", "Activity") == "Activity":
        yield obj, True
    ca = st.get("context", {}).get("contextActivities")
    if ca:
        for group in CONTEXT_GROUPS:
            for a in ca.get(group, ()):
                yield a, False


def index_of(st: Mapping[str, Any]) -> StatementIndex:
    obj = st["object"]
    kind = obj.get("objectType", "Activity")
    context = st.get("context", {})
    verb = str(st["verb"]["id"])
    ref = str(obj["id"]).lower() if kind == "StatementRef" else None
    idx = StatementIndex(verb, context.get("registration", "").lower() or None, ref, verb == validate.VOIDED)
    keys = idx.keys
    _agent_keys(st["actor"], AGENT, keys)
    if kind in ("Agent", "Group"):
        _agent_keys(obj, AGENT, keys)
    parts = [st]
    if kind == "SubStatement":
        parts.append(obj)
        _agent_keys(obj["actor"], AGENT_RELATED, keys)
        sub_obj = obj["object"]
        if sub_obj.get("objectType") in ("Agent", "Group"):
            _agent_keys(sub_obj, AGENT_RELATED, keys)
    for i, part in enumerate(parts):
        ctx = part.get("context", {})
        for role in ("instructor", "team"):
            if role in ctx:
                _agent_keys(ctx[role], AGENT_RELATED, keys)
        for activity, is_object in _activities(part):
            keys.append((str(activity["id"]), ACTIVITY if is_object and i == 0 else ACTIVITY_RELATED))
            if "definition" in activity:
                idx.definitions.append((str(activity["id"]), canonical(activity["definition"])))
    return idx


_AUTHORITY_JSON = json.dumps(AUTHORITY)


def prepare_statements(statements: list[Any], where: str, stored_us: int,
                       activity_skills: Mapping[str, str]) -> tuple[list[Item], list[str]]:
    """Validated items to store (a repeat within the request once) and every statement's id, in order.

    Each statement is encoded once: its canonical text gives the digest, and the bodies for the store and the
    district are that text with the properties this LRS sets appended (JSON key order carries no meaning).
    The version a statement came with is kept (1.0.3 when it had none).
    """
    items: list[Item] = []
    ids: list[str] = []
    seen: dict[str, str] = {}
    stored_json = json.dumps(iso(stored_us))
    stored_tail = f',"stored":{stored_json},"authority":{_AUTHORITY_JSON}}}'
    for i, raw in enumerate(statements):
        field_name = f"{where}[{i}]" if where else "statement"
        sent = validate.statement(raw, field_name)  # a fresh dict
        sent.pop("stored", None)  # the LRS's to set
        sent.pop("authority", None)
        version = sent.pop("version", XAPI_VERSION)
        if "id" not in sent:
            sent["id"] = str(uuid.uuid4())
        sid: str = sent["id"]
        text = canonical(sent)
        d = digest_text(text)
        ids.append(sid)
        if sid in seen:
            if seen[sid] != d:
                raise StatementError(f"{field_name}.id", "repeats an earlier statement id in this request")
            continue
        seen[sid] = d
        # as sent, with a timestamp (when it was stored, if it had none) and the version: what the district gets
        outbound = (text[:-1] + ("" if "timestamp" in sent else f',"timestamp":{stored_json}')
                    + f',"version":{json.dumps(version)}}}')
        body = outbound[:-1] + stored_tail  # as stored here and served by GET
        items.append(Item(sid, d, body, evidence_of(sent, stored_us, activity_skills), outbound, index_of(sent)))
    return items, ids


# -- formats ------------------------------------------------------------------------------------------------
def as_ids(st: dict[str, Any]) -> dict[str, Any]:
    """format=ids: Agents, Groups, Activities and Verbs reduced to their identifiers."""
    out = dict(st)
    out["actor"] = agents.ifi_only(st["actor"])
    out["verb"] = {"id": st["verb"]["id"]}
    obj = st["object"]
    kind = obj.get("objectType", "Activity")
    if kind == "Activity":
        out["object"] = {"id": obj["id"]}
    elif kind in ("Agent", "Group"):
        out["object"] = agents.ifi_only(obj)
    elif kind == "SubStatement":
        out["object"] = as_ids(obj)
    if "authority" in st:
        out["authority"] = agents.ifi_only(st["authority"])
    if "context" in st:
        ctx = dict(st["context"])
        for role in ("instructor", "team"):
            if role in ctx:
                ctx[role] = agents.ifi_only(ctx[role])
        if "contextActivities" in ctx:
            ctx["contextActivities"] = {k: [{"id": a["id"]} for a in v] for k, v in ctx["contextActivities"].items()}
        out["context"] = ctx
    return out


def accepted_languages(header: str) -> list[str]:
    """An Accept-Language header's tags, best first (q=0 dropped); "*" may be among them."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            ranked.append((-q, i, tag.strip().lower()))
    return [t for _, _, t in sorted(ranked)]


def pick_language(lang_map: Mapping[str, str], wanted: list[str]) -> dict[str, str]:
    """One entry of a language map: the best match for `wanted` (exact, then by prefix), else the first."""
    if not lang_map:
        return {}
    lower = {k.lower(): k for k in lang_map}
    for tag in wanted:
        if tag in lower:
            return {lower[tag]: lang_map[lower[tag]]}
        for k_low, k in lower.items():
            if k_low.startswith(tag + "-") or tag.startswith(k_low + "-"):
                return {k: lang_map[k]}
    k = next(iter(lang_map))
    return {k: lang_map[k]}


def _canonical_activity(a: Mapping[str, Any], wanted: list[str]) -> dict[str, Any]:
    if "definition" not in a:
        return dict(a)
    definition = dict(a["definition"])
    for k in ("name", "description"):
        if k in definition:
            definition[k] = pick_language(definition[k], wanted)
    for k in ("choices", "scale", "source", "target", "steps"):
        if k in definition:
            definition[k] = [{**c, "description": pick_language(c["description"], wanted)} if "description" in c
                             else c for c in definition[k]]
    return {**a, "definition": definition}


def as_canonical(st: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    """format=canonical: one language in verb displays and activity definitions (Accept-Language decides)."""
    out = dict(st)
    if "display" in st["verb"]:
        out["verb"] = {**st["verb"], "display": pick_language(st["verb"]["display"], wanted)}
    obj = st["object"]
    kind = obj.get("objectType", "Activity")
    if kind == "Activity":
        out["object"] = _canonical_activity(obj, wanted)
    elif kind == "SubStatement":
        out["object"] = as_canonical(obj, wanted)
    ca = st.get("context", {}).get("contextActivities")
    if ca:
        out["context"] = {**st["context"], "contextActivities": {
            k: [_canonical_activity(a, wanted) for a in v] for k, v in ca.items()}}
    return out
