"""Evidence intake: xAPI statements (`/xapi/statements`) and compact evidence (`/api/v1/evidence`).

Every accepted item is committed (group commit, edge.mastery.writer) before the answer; an id already
stored with the same content is a no-op, with other content a 409 that stores nothing of the request.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from edge.exc import RequestError, StatementError
from edge.mastery.service import MASTERY, Mastery
from edge.mastery.store import WriteRequest
from edge.mastery.xapi import Item, digest, iso, now_us, parse_compact, prepare_statements

MAX_BODY = 1024 * 1024  # bytes per request
MAX_ITEMS = 1000  # statements or evidence items per request


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; 413 over MAX_BODY, 400 (naming the body) when it is not valid JSON text."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise RequestError(413, f"request body is larger than {MAX_BODY} bytes")
    try:
        raw = await request.read()  # aiohttp enforces client_max_size for chunked bodies
    except web.HTTPRequestEntityTooLarge:
        raise RequestError(413, f"request body is larger than {MAX_BODY} bytes") from None
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StatementError("body", f"invalid JSON: {e}") from None
    # JSON may escape a lone surrogate ("\ud800"), which no UTF-8 store or LRS can hold: refuse it here
    # (only bodies with a \uD8xx-\uDFxx escape pay for the check)
    if re.search(rb"\\u[dD][89a-fA-F]", raw):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise StatementError("body", "contains a lone surrogate escape (not valid Unicode text)") from None
    return body


def _too_many(what: str) -> RequestError:
    return RequestError(413, f"at most {MAX_ITEMS} {what} per request")


async def _store(m: Mastery, items: list[Item], stored_us: int) -> None:
    req = WriteRequest(items, iso(stored_us))
    await m.writer.write(req)
    if req.conflict is not None:
        raise RequestError(409, f"id {req.conflict} was already stored with different content", key="id")


async def post_statements(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    body = await read_json(request)
    many = isinstance(body, list)
    statements = body if many else [body]
    if not statements:
        raise StatementError("body", "no statements")
    if len(statements) > MAX_ITEMS:
        raise _too_many("statements")
    stored_us = now_us()
    items, ids = prepare_statements(statements, "statements" if many else "", stored_us, m.activity_skills)
    await _store(m, items, stored_us)
    return web.json_response(ids)


async def put_statement(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    sid = request.query.get("statementId", "").lower()
    if not sid:
        raise StatementError("statementId", "query parameter is required")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise StatementError("statement", "must be a JSON object")
    if "id" in body and str(body["id"]).lower() != sid:
        raise StatementError("statement.id", "differs from statementId")
    stored_us = now_us()
    items, _ = prepare_statements([{**body, "id": sid}], "", stored_us, m.activity_skills)
    await _store(m, items, stored_us)
    return web.Response(status=204)


async def get_statement(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    sid = request.query.get("statementId", "").lower()
    if not sid:
        raise RequestError(400, "statementId is required (this endpoint serves single statements)",
                           key="statementId")
    st = await m.writer.run_db(lambda: m.store.statement(sid))
    if st is None:
        raise RequestError(404, "no such statement", key="statementId")
    return web.json_response(st)


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
    await _store(m, list(items.values()), now_us())
    return web.json_response({"ids": list(items)})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/xapi/statements", post_statements)
    app.router.add_put("/xapi/statements", put_statement)
    app.router.add_get("/xapi/statements", get_statement)
    app.router.add_post("/api/v1/evidence", post_evidence)
