"""Document resources (xAPI 1.0.3 Communication 2.2-2.7): State, Activity Profile and Agent Profile.

Which parameters each resource takes, what one request addresses (one document, or every document of an
agent/activity for GET ids and DELETE of state), ETags, and the JSON merge of POST.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.exc import RequestError, StatementError
from edge.serving import jsontext
from edge.xapi.agents import ifi_key, parse_agent_param
from edge.xapi.formats import is_iri, is_uuid, parse_timestamp, timestamp_us

STATE, ACTIVITY_PROFILE, AGENT_PROFILE = "state", "activity_profile", "agent_profile"
MAX_ID = 1024  # characters in a stateId / profileId


@dataclass(frozen=True)
class Resource:
    kind: str
    id_param: str
    activity: bool  # takes activityId
    agent: bool  # takes agent
    registration: bool
    delete_many: bool  # DELETE without an id deletes every matching document
    concurrency: bool  # a PUT/POST over an existing document needs If-Match / If-None-Match


RESOURCES = {
    STATE: Resource(STATE, "stateId", True, True, True, True, False),
    ACTIVITY_PROFILE: Resource(ACTIVITY_PROFILE, "profileId", True, False, False, False, True),
    AGENT_PROFILE: Resource(AGENT_PROFILE, "profileId", False, True, False, False, True),
}


@dataclass(frozen=True)
class Target:
    """What one document request addresses; `doc_id` None means every document of the scope."""

    kind: str
    activity: str
    agent: str  # the agent's IFI key ("" when the resource takes no agent)
    registration: str
    doc_id: str | None
    since_us: int | None


def parse_target(kind: str, method: str, params: Mapping[str, str]) -> Target:
    """The request's target, or a 400 naming the missing or bad parameter."""
    r = RESOURCES[kind]
    allowed = {r.id_param, "since"} | ({"activityId"} if r.activity else set()) | (
        {"agent"} if r.agent else set()) | ({"registration"} if r.registration else set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise RequestError(400, f"unknown parameter {unknown[0]} (known: {', '.join(sorted(allowed))})",
                           key=unknown[0])
    activity = ""
    if r.activity:
        activity = params.get("activityId", "")
        if not activity:
            raise RequestError(400, "activityId is required", key="activityId")
        if not is_iri(activity):
            raise RequestError(400, "activityId must be an IRI", key="activityId")
    agent = ""
    if r.agent:
        if "agent" not in params:
            raise RequestError(400, "agent is required", key="agent")
        try:
            agent = ifi_key(parse_agent_param(params["agent"], "agent")) or ""
        except StatementError as e:
            raise RequestError(400, e.message, key="agent") from None
    registration = params.get("registration", "")
    if registration and not is_uuid(registration):
        raise RequestError(400, "registration must be a UUID", key="registration")
    doc_id = params.get(r.id_param)
    if doc_id is not None and (not doc_id or len(doc_id) > MAX_ID):
        raise RequestError(400, f"{r.id_param} must be 1..{MAX_ID} characters", key=r.id_param)
    if doc_id is None and (method in ("PUT", "POST") or (method == "DELETE" and not r.delete_many)):
        raise RequestError(400, f"{r.id_param} is required", key=r.id_param)
    since_us = None
    if "since" in params:
        if doc_id is not None or method != "GET":
            raise RequestError(400, f"since goes only with a GET of {r.id_param}s (no {r.id_param})", key="since")
        when = parse_timestamp(params["since"])
        if when is None:
            raise RequestError(400, "since must be an ISO 8601 timestamp", key="since")
        since_us = timestamp_us(when)
    return Target(kind, activity, agent, registration.lower(), doc_id, since_us)


def etag(content: bytes) -> str:
    """The document's ETag: the quoted SHA-1 of its content (what the ADL suite expects)."""
    return '"' + hashlib.sha1(content).hexdigest() + '"'


def is_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


def json_object(content: bytes, what: str) -> dict[str, Any]:
    try:
        value = jsontext.loads(content)
    except ValueError:
        raise RequestError(400, f"{what} is not valid JSON", key="body") from None
    if not isinstance(value, dict):
        raise RequestError(400, f"{what} must be a JSON object to merge", key="body")
    return value


def merge(old: bytes, old_type: str, new: bytes, new_type: str) -> bytes:
    """POST onto an existing document: both must be JSON objects; the new top-level keys win."""
    if not (is_json(old_type) and is_json(new_type)):
        raise RequestError(400, "POST merges JSON objects only: the stored document or this one is not "
                                "application/json (use PUT to replace)", key="Content-Type")
    merged = json_object(old, "the stored document")
    merged.update(json_object(new, "the document"))
    return json.dumps(merged, separators=(",", ":"), ensure_ascii=False).encode()


def matches(tag: str | None, header: str) -> bool:
    """Whether an If-Match / If-None-Match header value names `tag` ("*" names any existing document)."""
    if tag is None:
        return False
    for candidate in header.split(","):
        c = candidate.strip()
        if c == "*" or c.removeprefix("W/") == tag:
            return True
    return False
