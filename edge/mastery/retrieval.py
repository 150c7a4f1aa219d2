"""GET (and HEAD) /xapi/statements: one statement by statementId / voidedStatementId, or a query whose
result pages through `more`; formats exact/ids/canonical; attachments=true answers multipart/mixed.

Every answer, errors included, carries X-Experience-API-Consistent-Through, taken before the read. A launch
credential reads only its own student's statements (a query must name that agent).
"""

from __future__ import annotations

import email.utils
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from edge.exc import RequestError
from edge.mastery.middleware import principal
from edge.mastery.service import MASTERY
from edge.sync.outbox import Outbox
from edge.xapi import multipart, query
from edge.xapi.agents import ifi_key
from edge.xapi.formats import parse_timestamp
from edge.xapi.statements import accepted_languages, as_canonical, as_ids

CONSISTENT = "X-Experience-API-Consistent-Through"


def _params(request: web.Request) -> dict[str, str]:
    params: dict[str, str] = {}
    for k, v in request.query.items():
        if k in params:
            raise RequestError(400, f"parameter {k} is given more than once", key=k)
        params[k] = v
    return params


def _render(bodies: Sequence[str], fmt: str, wanted: list[str]) -> list[Any] | None:
    """Statements in `fmt`; None for exact (the stored texts are served as they are)."""
    if fmt == "exact":
        return None
    statements = [json.loads(b) for b in bodies]
    return [as_ids(st) for st in statements] if fmt == "ids" else [as_canonical(st, wanted) for st in statements]


def _attachment_parts(db: sqlite3.Connection, bodies: Sequence[str]) -> list[tuple[str, str, bytes]]:
    hashes: dict[str, None] = {}
    for b in bodies:
        if '"attachments"' in b:
            for a in json.loads(b).get("attachments", ()):  # (with a fileUrl too, when the content came)
                hashes[str(a["sha2"]).lower()] = None
    held = Outbox.attachments_in(db, list(hashes))
    return [(h, *held[h]) for h in hashes if h in held]


async def get_statements(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    through = m.consistent_through()
    try:
        resp = await _get(request, through)
    except RequestError as e:
        e.headers[CONSISTENT] = through
        raise
    resp.headers[CONSISTENT] = through
    return resp


async def _get(request: web.Request, through: str) -> web.StreamResponse:
    m = request.app[MASTERY]
    q = query.parse(_params(request))
    claims = principal(request).launch
    wanted = accepted_languages(request.headers.get("Accept-Language", ""))
    if isinstance(q, query.Single):
        body = await m.reads.run(lambda db: m.reads.statements.one(q.id, q.voided))
        if body is None or (claims is not None and ifi_key(json.loads(body)["actor"]) != claims.agent_key()):
            raise RequestError(404, "no such statement" + (" (voided statements: voidedStatementId)"
                                                           if not q.voided else ""), key="statementId")
        rendered = _render([body], q.format, wanted)
        text = body if rendered is None else json.dumps(rendered[0], ensure_ascii=False)
        headers = {}
        stored = parse_timestamp(str(json.loads(body)["stored"]))
        if stored is not None:
            headers["Last-Modified"] = email.utils.format_datetime(stored, usegmt=True)
        return await _answer(request, text, [body], q.attachments, headers)
    if claims is not None and (q.agent != claims.agent_key() or q.related_agents):
        raise RequestError(403, "this lesson's credential may only query its own student's statements "
                                "(agent = the launch actor)", key="agent")
    page = await m.reads.run(lambda db: m.reads.statements.page(q))
    more = f"/xapi/statements?more={q.more(page.last_seq, page.upto)}" if page.last_seq is not None else ""
    rendered = _render(page.bodies, q.format, wanted)
    listed = ",".join(page.bodies) if rendered is None else ",".join(
        json.dumps(st, ensure_ascii=False) for st in rendered)
    text = f'{{"statements":[{listed}],"more":{json.dumps(more)}}}'
    return await _answer(request, text, page.bodies, q.attachments, {})


async def _answer(request: web.Request, text: str, bodies: Sequence[str], attachments: bool,
                  headers: dict[str, str]) -> web.StreamResponse:
    if not attachments:
        return web.Response(text=text, content_type="application/json", headers=headers)
    m = request.app[MASTERY]
    parts = await m.reads.run(lambda db: _attachment_parts(db, bodies))
    data, ctype = multipart.build(text.encode(), parts)
    return web.Response(body=data, headers={**headers, "Content-Type": ctype})
