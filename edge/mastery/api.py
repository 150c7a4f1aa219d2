"""Mastery reads and sync control for teachers' tools: /api/v1/mastery... and /api/v1/sync."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.exc import RequestError
from edge.mastery.model import CellView, band
from edge.mastery.service import MASTERY


def _cells(views: list[CellView], bands: list[float], key: str) -> list[dict[str, Any]]:
    return [{key: getattr(v, key), "p_known": v.p_known, "responses": v.responses, "band": band(v.p_known, bands)}
            for v in views]


async def get_mastery(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    skill = request.query.get("skill", "")
    if not skill:
        raise RequestError(400, "skill query parameter is required", key="skill")
    bands = m.config.mastery.bands
    return web.json_response({"skill": skill, "bands": bands,
                              "students": _cells(m.state.by_skill(skill), bands, "student")})


async def get_student(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    student = request.match_info["student"]
    views = m.state.by_student(student)
    if views is None:
        raise RequestError(404, "no evidence for this student", key="student")
    bands = m.config.mastery.bands
    return web.json_response({"student": student, "bands": bands, "skills": _cells(views, bands, "skill")})


async def get_sync(request: web.Request) -> web.StreamResponse:
    """District sync status: backlog, oldest unsent, last success/error, quarantined (also `edge sync status`)."""
    m = request.app[MASTERY]
    return web.json_response(await m.writer.run_db(m.sync.status))


async def post_sync(request: web.Request) -> web.StreamResponse:
    """'Sync now': start an upload round at once (it runs in the background; poll GET for the outcome)."""
    m = request.app[MASTERY]
    if not m.config.district.lrs_url:
        raise RequestError(409, "sync is off: no district.lrs_url configured (evidence is kept)",
                           key="district.lrs_url")
    m.sync.wake()
    return web.json_response({"status": "sync round started"}, status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/mastery", get_mastery)
    app.router.add_get("/api/v1/mastery/students/{student}", get_student)
    app.router.add_get("/api/v1/sync", get_sync)
    app.router.add_post("/api/v1/sync", post_sync)
