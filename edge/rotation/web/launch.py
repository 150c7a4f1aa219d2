"""The student page as the lesson launcher: who the student is, and `/launch`, which sends them to a lesson
with the xAPI launch parameters its content expects (edge.launch: TinCan or cmi5) and a credential scoped
to them, minted at the click (so it is fresh however long the page stayed open).

A student picks their group, then themselves among the group's members in the running plan (their
pseudonymous id, or the roster's name when names are kept: shown on their own screen only). Which
convention a lesson uses, and its activity id, come from the lesson manifests (`mastery.manifests`:
`launch` = "tincan" (default), "cmi5" or "none"); a lesson in no manifest gets a TinCan launch with its
origin URL as activity id.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import quote

from flask import Blueprint, abort, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from content_cache.manifest import ManifestItem, load_manifest
from content_cache.origins import effective_origins
from edge import launch
from edge.exc import ManifestError, RosterError
from edge.rotation.web.context import ctx
from edge.sync.roster import load_roster

log = logging.getLogger(__name__)
bp = Blueprint("launch", __name__)
MAX_PARAM = 512


def hostname() -> str:
    """The unit's name as the Chromebook used it (so links work however the unit was reached)."""
    host = request.host
    return host[: host.index("]") + 1] if host.startswith("[") else host.split(":")[0]


def lesson_base() -> str:
    """Lesson links go to the lesson cache on this same unit, by the name the Chromebook used for it."""
    return f"{request.scheme}://{hostname()}:{ctx().config.cache.port}/"


def members(group: str) -> list[str]:
    """The students of `group` in the running plan (none when the plan lists no members)."""
    plan = ctx().rotation.engine.plan
    if plan is None:
        return []
    return next((list(g.members) for g in plan.groups if g.name == group), [])


def display_names(students: list[str]) -> dict[str, str]:
    """Roster names of these students when the roster keeps names, else their ids (never logged)."""
    names = {s: s for s in students}
    try:
        roster = load_roster(ctx().config)
    except (RosterError, OSError, ValueError):
        return names
    if roster is not None:
        for s in students:
            user = roster.users.get(s, {})
            full = " ".join(p for p in (user.get("givenName", ""), user.get("familyName", "")) if p)
            if full:
                names[s] = full
    return names


def _manifest_item(lesson: str) -> ManifestItem | None:
    config = ctx().config
    origin, _, path = lesson.partition("/")
    origins = effective_origins(config)
    for file in config.mastery.manifests:
        try:
            for item in load_manifest(Path(file), origins):
                if item.origin == origin and item.path == path:
                    return item
        except ManifestError as e:
            log.warning("lesson manifest %s cannot be read: %s", file, e)
    return None


def _station_lessons() -> set[str]:
    plan = ctx().rotation.engine.plan
    return {lesson for s in plan.stations for lesson in s.lessons} if plan is not None else set()


@bp.get("/launch")
def launch_lesson() -> BaseResponse:
    """302 to the lesson with launch parameters for this student (a plain link when launches are off)."""
    group, student, lesson = (request.args.get(k, "") for k in ("group", "student", "lesson"))
    if any(len(v) > MAX_PARAM for v in (group, student, lesson)):
        abort(400, "Parameter too long.")
    if lesson not in _station_lessons():
        abort(404, "This lesson is not in the running rotation.")
    if student not in members(group):
        abort(404, f"There is no student {student!r} in group {group!r}.")
    config = ctx().config
    origin, _, path = lesson.partition("/")
    lesson_url = lesson_base() + "/".join(quote(p, safe="") for p in lesson.split("/"))
    item = _manifest_item(lesson)
    convention = (item.launch if item is not None and item.launch else "tincan")
    key = config.mastery.class_key
    if convention == "none" or not key:
        return _no_store(redirect(lesson_url, 302))
    upstream = effective_origins(config).get(origin)
    activity = item.activity if item is not None and item.activity else (
        f"{upstream.rstrip('/')}/{path}" if upstream and "://" in upstream else lesson_url)
    mastery = f"{request.scheme}://{hostname()}:{config.mastery.port}"
    lifetime = config.mastery.launch_minutes * 60
    if convention == "cmi5":
        claims = launch.new_claims(student, config.mastery.account_home_page, activity, time.time(), lifetime, "fetch")
        url = launch.cmi5_link(lesson_url, f"{mastery}/xapi/", f"{mastery}/launch/fetch", key, claims)
    else:
        claims = launch.new_claims(student, config.mastery.account_home_page, activity, time.time(), lifetime, "auth")
        url = launch.tincan_link(lesson_url, f"{mastery}/xapi/", key, claims)
    return _no_store(redirect(url, 302))


def _no_store(resp: BaseResponse) -> BaseResponse:
    resp.headers["Cache-Control"] = "no-store"  # a credential is in the Location
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp
