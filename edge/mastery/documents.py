"""The document resources over HTTP: /xapi/activities/state, /xapi/activities/profile, /xapi/agents/profile.

GET one document (with its ETag and Last-Modified) or the ids of many (`since`); PUT replaces, POST merges
JSON objects, DELETE removes (every state document of an agent and activity when no stateId is given).
Writes are group-committed with the statements (edge.mastery.docstore). A launch credential reads and
writes only its own student's state and agent profile (and reads activity profiles).
"""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from edge.exc import RequestError
from edge.mastery import docstore
from edge.mastery.middleware import principal, read_body, resource
from edge.mastery.service import MASTERY
from edge.serving.aio import json_response
from edge.xapi import now_us
from edge.xapi.documents import (
    ACTIVITY_PROFILE,
    AGENT_PROFILE,
    STATE,
    Target,
    is_json,
    json_object,
    parse_target,
)


def _http_date(us: int) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(us / 1_000_000, UTC), usegmt=True)


def _target(request: web.Request, kind: str) -> Target:
    params: dict[str, str] = {}
    for k, v in request.query.items():
        if k in params:
            raise RequestError(400, f"parameter {k} is given more than once", key=k)
        params[k] = v
    t = parse_target(kind, "GET" if request.method == "HEAD" else request.method, params)
    claims = principal(request).launch
    if claims is not None:
        writes = request.method not in ("GET", "HEAD")
        if kind == ACTIVITY_PROFILE and writes:
            raise RequestError(403, "this lesson's credential may read activity profiles, not change them",
                               key="activityId")
        if kind != ACTIVITY_PROFILE and t.agent != claims.agent_key():
            raise RequestError(403, "this lesson's credential may only use its own student's documents", key="agent")
        if kind == STATE and t.registration and t.registration != claims.registration:
            raise RequestError(403, "this lesson's credential may only use its own registration's state",
                               key="registration")
    return t


async def _get(request: web.Request, kind: str) -> web.StreamResponse:
    m = request.app[MASTERY]
    t = _target(request, kind)
    if t.doc_id is None:
        found, newest = await m.reads.run(lambda db: docstore.ids(db, t))
        headers = {"Last-Modified": _http_date(newest)} if newest is not None else {}
        return json_response(found, headers=headers)
    doc = await m.reads.run(lambda db: docstore.get(db, t))
    if doc is None:
        raise RequestError(404, "no such document", key="stateId" if kind == STATE else "profileId")
    return web.Response(body=doc.content, headers={
        "Content-Type": doc.content_type, "ETag": doc.etag, "Last-Modified": _http_date(doc.updated_us)})


async def _write(request: web.Request, kind: str) -> web.StreamResponse:
    m = request.app[MASTERY]
    t = _target(request, kind)
    content = await read_body(request) if request.method != "DELETE" else b""
    ctype = request.headers.get("Content-Type", "application/octet-stream")
    if request.method == "POST" and is_json(ctype):
        json_object(content, "the document")  # POST merges JSON objects: refuse anything else now
    op = docstore.DocWrite(t, request.method, content, ctype, request.headers.get("If-Match"),
                           request.headers.get("If-None-Match"), now_us())
    await m.writer.write(op)
    if op.error is not None:
        raise op.error
    return web.Response(status=204)


def _handlers(kind: str) -> dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    async def get(request: web.Request) -> web.StreamResponse:
        return await _get(request, kind)

    async def write(request: web.Request) -> web.StreamResponse:
        return await _write(request, kind)

    return {"GET": get, "PUT": write, "POST": write, "DELETE": write}


def add_routes(app: web.Application) -> None:
    resource(app, "/xapi/activities/state", _handlers(STATE))
    resource(app, "/xapi/activities/profile", _handlers(ACTIVITY_PROFILE))
    resource(app, "/xapi/agents/profile", _handlers(AGENT_PROFILE))

