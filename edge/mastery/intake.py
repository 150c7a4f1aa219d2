"""Evidence intake: xAPI statements (POST/PUT /xapi/statements, JSON or multipart/mixed with attachments) and
compact evidence (`/api/v1/evidence`).

Every accepted item is committed (group commit, edge.mastery.writer) before the answer; an id already
stored with the same content is a no-op, with other content a 409 that stores nothing of the request.
A launch credential may only write statements whose actor is its student (403 otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from edge.exc import RequestError, StatementError
from edge.limits import REQUEST_ITEMS_MAX
from edge.mastery.middleware import principal, read_body
from edge.mastery.service import MASTERY, Mastery
from edge.mastery.store import WriteRequest
from edge.serving import jsontext
from edge.serving.aio import json_response
from edge.xapi import Item, digest, iso, multipart, now_us, parse_compact, prepare_statements, signature
from edge.xapi.agents import ifi_key
from edge.xapi.multipart import Part
from edge.xapi.validate import VOIDED

MAX_ITEMS = REQUEST_ITEMS_MAX  # statements or evidence items per request


def loads(raw: bytes) -> Any:
    """JSON text as a value; 400 (naming the body) when it is not strict JSON (edge.serving.jsontext: also
    nesting too deep, an integer too long, a lone surrogate)."""
    try:
        return jsontext.loads(raw)
    except ValueError as e:
        raise StatementError("body", str(e)) from None


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; 413 over middleware.MAX_BODY, 400 (naming the body) when it is not JSON."""
    return loads(await read_body(request))


async def _statements_body(request: web.Request) -> tuple[Any, dict[str, Part]]:
    """The statements of a JSON or multipart/mixed request, and the attachment parts it carried."""
    ctype = request.headers.get("Content-Type", "application/json")
    kind = ctype.split(";")[0].strip().lower()
    raw = await read_body(request)
    if kind == "multipart/mixed":
        statements_raw, parts = multipart.parse(raw, ctype)
        return loads(statements_raw), parts
    if kind not in ("application/json", ""):
        raise RequestError(400, "statements are sent as application/json, or multipart/mixed with attachments",
                           key="Content-Type")
    return loads(raw), {}


def _check_parts(statements: Sequence[Any], parts: Mapping[str, Part], where: str) -> None:
    """Attachments and parts correspond; signatures are valid JWS of their statements."""
    if not parts and not any("attachments" in st for st in statements):
        return
    valid = [st for st in statements if isinstance(st, dict)]
    for i, st in enumerate(valid):
        attachments = st.get("attachments")
        if isinstance(attachments, list) and attachments:
            signature.check(st, parts, f"{where}[{i}]" if where else "statement")
    multipart.match_parts(valid, parts)


def _check_scope(request: web.Request, raw: Sequence[Any]) -> None:
    """A launch credential writes only its own student's statements, and voids none."""
    claims = principal(request).launch
    if claims is None:
        return
    mine = claims.agent_key()
    for st in raw:
        if ifi_key(st["actor"]) != mine:
            raise RequestError(403, "this lesson's credential may only record statements of its own student",
                               key="actor")
        if st["verb"]["id"] == VOIDED:
            raise RequestError(403, "voiding statements is for trusted tools (the class key)", key="verb")


def _too_many(what: str) -> RequestError:
    return RequestError(413, f"at most {MAX_ITEMS} {what} per request")


async def store(m: Mastery, items: list[Item], stored_us: int, parts: Mapping[str, Part] | None = None) -> None:
    """Commit `items` (stored at `stored_us`); 409 when an id is stored with other content.

    Call it in the same step that took `stored_us` (no await between): until the commit, the service
    reports its consistent-through time before `stored_us`.
    """
    req = WriteRequest(items, iso(stored_us), attachments=dict(parts or {}), stored_us=stored_us)
    with m.in_flight(stored_us):
        await m.writer.write(req)
    if req.conflict is not None:
        raise RequestError(409, f"id {req.conflict} was already stored with different content", key="id")


async def post_statements(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    body, parts = await _statements_body(request)
    many = isinstance(body, list)
    statements = body if many else [body]
    if not statements:
        raise StatementError("body", "no statements")
    if len(statements) > MAX_ITEMS:
        raise _too_many("statements")
    where = "statements" if many else ""
    stored_us = now_us()
    items, ids = prepare_statements(statements, where, stored_us, m.activity_skills)
    _check_parts(statements, parts, where)
    _check_scope(request, statements)
    await store(m, items, stored_us, parts)
    return json_response(ids)


async def put_statement(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    sid = request.query.get("statementId", "").lower()
    if not sid:
        raise StatementError("statementId", "query parameter is required")
    extra = sorted(set(request.query) - {"statementId"})
    if extra:
        raise RequestError(400, f"unknown parameter {extra[0]} (PUT takes statementId)", key=extra[0])
    body, parts = await _statements_body(request)
    if not isinstance(body, dict):
        raise StatementError("statement", "must be a JSON object")
    if "id" in body and str(body["id"]).lower() != sid:
        raise StatementError("statement.id", "differs from statementId")
    body = {**body, "id": sid}
    stored_us = now_us()
    items, _ = prepare_statements([body], "", stored_us, m.activity_skills)
    _check_parts([body], parts, "")
    _check_scope(request, [body])
    await store(m, items, stored_us, parts)
    return web.Response(status=204)


async def post_evidence(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    body = await read_json(request)
    if not isinstance(body, list):
        raise StatementError("body", "must be a JSON array of {id, student, skill, correct, timestamp}")
    if len(body) > MAX_ITEMS:
        raise _too_many("evidence items")
    items: dict[str, Item] = {}
    for i, raw in enumerate(body):
        ev = parse_compact(raw, f"[{i}]")
        d = digest({"student": ev.student, "skill": ev.skill, "correct": ev.correct, "ts_us": ev.ts_us})
        if ev.id in items and items[ev.id].digest != d:
            raise StatementError(f"[{i}].id", "repeats an earlier id in this request")
        items[ev.id] = Item(ev.id, d, None, ev)
    await store(m, list(items.values()), now_us())
    return json_response({"ids": list(items)})

