"""Mastery reads and sync control for teachers' tools: /api/v1/mastery... and /api/v1/sync."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.config import EdgeConfig
from edge.exc import RequestError, RosterError
from edge.limits import SKILL_MAX, STUDENT_ID_MAX, name_problem
from edge.mastery import openapi
from edge.mastery.model import CellView, band
from edge.mastery.service import MASTERY
from edge.serving.aio import json_response
from edge.sync.roster import load_roster


def _cells(views: list[CellView], bands: list[float], key: str) -> list[dict[str, Any]]:
    return [{key: getattr(v, key), "p_known": v.p_known, "responses": v.responses, "band": band(v.p_known, bands)}
            for v in views]


def roster_students(config: EdgeConfig) -> list[str]:
    """The enabled students of the unit's roster (none without a roster, or with one that cannot be read)."""
    try:
        roster = load_roster(config)
    except (RosterError, OSError, ValueError):
        return []
    if roster is None:
        return []
    return [uid for uid, u in roster.users.items() if u.get("role") == "student" and u.get("enabled", True)]


async def get_mastery(request: web.Request) -> web.StreamResponse:
    """One skill's report: the students with evidence on it, and the roster's students at the prior."""
    m = request.app[MASTERY]
    skill = request.query.get("skill", "")
    if reason := name_problem(skill, "skill", SKILL_MAX):
        raise RequestError(400, f"the skill query parameter is required: {reason}", key="skill")
    bands = m.config.mastery.bands
    views = m.state.by_skill(skill, roster_students(m.config))
    return json_response({"skill": skill, "bands": bands, "students": _cells(views, bands, "student")})


async def get_student(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    student = request.match_info["student"]
    if reason := name_problem(student, "student", STUDENT_ID_MAX):
        raise RequestError(400, reason, key="student")
    views = m.state.by_student(student)
    if views is None:
        raise RequestError(404, "no evidence for this student", key="student")
    bands = m.config.mastery.bands
    return json_response({"student": student, "bands": bands, "skills": _cells(views, bands, "skill")})


async def get_sync(request: web.Request) -> web.StreamResponse:
    """District sync status: backlog, oldest unsent, last success/error, quarantined (also `edge sync status`)."""
    m = request.app[MASTERY]
    return json_response(await m.writer.run_db(m.sync.status))


async def post_sync(request: web.Request) -> web.StreamResponse:
    """'Sync now': start an upload round at once (it runs in the background; poll GET for the outcome)."""
    m = request.app[MASTERY]
    if not m.config.district.lrs_url:
        raise RequestError(409, "sync is off: no district.lrs_url configured (evidence is kept)",
                           key="district.lrs_url")
    m.sync.wake()
    return json_response({"status": "sync round started"}, status=202)


async def get_openapi(request: web.Request) -> web.StreamResponse:
    return json_response(openapi.spec())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", get_openapi)
    app.router.add_get("/api/v1/mastery", get_mastery)
    app.router.add_get("/api/v1/mastery/students/{student}", get_student)
    app.router.add_get("/api/v1/sync", get_sync)
    app.router.add_post("/api/v1/sync", post_sync)
