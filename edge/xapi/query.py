"""GET /statements parameters (xAPI 1.0.3 Communication 2.1.3): single-statement requests and queries, and
the `more` continuation of a query's next page.

A `more` token carries the original parameters, the position reached and the newest statement the first
page could see, so every page belongs to the same consistent result; it is not secret (it grants nothing
the parameters would not) and is re-checked like the first request.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass

from edge.exc import RequestError, StatementError
from edge.serving import jsontext
from edge.xapi.agents import ifi_key, parse_agent_param
from edge.xapi.formats import is_iri, is_uuid, parse_timestamp, timestamp_us

SINGLE = ("statementId", "voidedStatementId")
SINGLE_EXTRA = frozenset({"format", "attachments"})
FILTERS = ("agent", "verb", "activity", "registration", "related_activities", "related_agents", "since",
           "until", "limit", "format", "attachments", "ascending")
FORMATS = ("exact", "ids", "canonical")
MAX_LIMIT = 100  # statements per page (limit=0 or none asks for this)
MAX_MORE = 4096  # characters in a `more` token


@dataclass(frozen=True)
class Single:
    """GET one statement: by statementId (not voided) or voidedStatementId (voided)."""

    id: str
    voided: bool
    format: str
    attachments: bool


@dataclass(frozen=True)
class Query:
    params: tuple[tuple[str, str], ...]  # as given (for the `more` token)
    agent: str | None
    related_agents: bool
    verb: str | None
    activity: str | None
    related_activities: bool
    registration: str | None
    since_us: int | None
    until_us: int | None
    limit: int
    ascending: bool
    format: str
    attachments: bool
    after: int | None = None  # seq position reached by the previous page
    upto: int | None = None  # newest seq the first page could see

    @property
    def filtered(self) -> bool:
        """Whether a filter on the statements themselves applies (StatementRefs to matches then match too)."""
        return any(x is not None for x in (self.agent, self.verb, self.activity, self.registration))

    def more(self, after: int, upto: int) -> str:
        doc = {"p": list(self.params), "a": after, "u": upto}
        return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")


def _bool(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name, "false")
    if value not in ("true", "false"):
        raise RequestError(400, f"{name} must be true or false", key=name)
    return value == "true"


def _time(params: Mapping[str, str], name: str) -> int | None:
    if name not in params:
        return None
    when = parse_timestamp(params[name])
    if when is None:
        raise RequestError(400, f"{name} must be an ISO 8601 timestamp", key=name)
    return timestamp_us(when)


def _format(params: Mapping[str, str]) -> str:
    fmt = params.get("format", "exact")
    if fmt not in FORMATS:
        raise RequestError(400, f"format must be one of {', '.join(FORMATS)}", key="format")
    return fmt


def parse(params: Mapping[str, str]) -> Single | Query:
    """The request's parameters (already one value each), or a RequestError(400) naming the bad one."""
    if "more" in params:
        if len(params) > 1:
            raise RequestError(400, "more takes no other parameters", key="more")
        return _from_more(params["more"])
    single = [p for p in SINGLE if p in params]
    if single:
        if len(single) > 1:
            raise RequestError(400, "give statementId or voidedStatementId, not both", key=single[1])
        extra = sorted(set(params) - SINGLE_EXTRA - {single[0]})
        if extra:
            raise RequestError(400, f"{single[0]} goes only with format and attachments (not {extra[0]})",
                               key=extra[0])
        ident = params[single[0]]
        if not is_uuid(ident):
            raise RequestError(400, f"{single[0]} must be a UUID", key=single[0])
        return Single(ident.lower(), single[0] == "voidedStatementId", _format(params), _bool(params, "attachments"))
    unknown = sorted(set(params) - set(FILTERS))
    if unknown:
        raise RequestError(400, f"unknown parameter {unknown[0]} (known: {', '.join(FILTERS)}, more)", key=unknown[0])
    agent = None
    if "agent" in params:
        try:
            agent = ifi_key(parse_agent_param(params["agent"], "agent"))
        except StatementError as e:
            raise RequestError(400, e.message, key="agent") from None
    for name in ("verb", "activity"):
        if name in params and not is_iri(params[name]):
            raise RequestError(400, f"{name} must be an IRI", key=name)
    if "registration" in params and not is_uuid(params["registration"]):
        raise RequestError(400, "registration must be a UUID", key="registration")
    try:
        limit = int(params.get("limit", "0"))
    except ValueError:
        limit = -1
    if limit < 0 or not params.get("limit", "0").isdigit():
        raise RequestError(400, "limit must be a non-negative integer", key="limit")
    return Query(
        params=tuple(sorted(params.items())), agent=agent, related_agents=_bool(params, "related_agents"),
        verb=params.get("verb"), activity=params.get("activity"),
        related_activities=_bool(params, "related_activities"),
        registration=params["registration"].lower() if "registration" in params else None,
        since_us=_time(params, "since"), until_us=_time(params, "until"),
        limit=min(limit, MAX_LIMIT) if limit else MAX_LIMIT, ascending=_bool(params, "ascending"),
        format=_format(params), attachments=_bool(params, "attachments"),
    )


def _from_more(token: str) -> Query:
    bad = RequestError(400, "more is not a continuation this LRS gave", key="more")
    if len(token) > MAX_MORE:
        raise bad
    try:
        doc = jsontext.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        params = {str(k): str(v) for k, v in doc["p"]}
        after, upto = int(doc["a"]), int(doc["u"])
    except (ValueError, binascii.Error, KeyError, TypeError):
        raise bad from None
    if "more" in params:
        raise bad
    q = parse(params)
    if not isinstance(q, Query):
        raise bad
    return dataclasses.replace(q, after=after, upto=upto)
