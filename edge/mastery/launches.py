"""The cmi5 fetch URL (POST /launch/fetch?token=...): an AU launched from the student page trades it, once,
for its xAPI credential; the LMS.LaunchData state it must read next, and a "launched" statement, are
committed before the answer.

Errors answer in cmi5's shape ({"error-code", "error-text"}: 1 used or expired, 2 security, 3 application).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from edge import launch
from edge.mastery import docstore
from edge.mastery.intake import store
from edge.mastery.middleware import resource
from edge.mastery.service import MASTERY
from edge.serving.aio import json_response
from edge.xapi import SKILL_EXTENSION, iso, now_us, prepare_statements
from edge.xapi.documents import STATE, Target

CMI5 = "https://w3id.org/xapi/cmi5"
SESSION_EXTENSION = f"{CMI5}/context/extensions/sessionid"
LAUNCH_DATA = "LMS.LaunchData"
LAUNCHED = {"id": "http://adlnet.gov/expapi/verbs/launched", "display": {"en-US": "launched"}}
MOVE_ON = "CompletedOrPassed"


def _error(code: int, text: str, status: int) -> web.Response:
    return json_response({"error-code": str(code), "error-text": text}, status=status)


def launch_data(session: str, skill: str | None) -> dict[str, Any]:
    """LMS.LaunchData (cmi5 section 10): the context every statement of the session carries, and how it ends."""
    extensions: dict[str, Any] = {SESSION_EXTENSION: session}
    if skill is not None:  # so that every answer in the AU is evidence of the lesson's skill
        extensions[SKILL_EXTENSION] = skill
    return {"contextTemplate": {"extensions": extensions}, "launchMode": "Normal", "launchMethod": "AnyWindow",
            "moveOn": MOVE_ON}


def launched_statement(claims: launch.Claims, session: str, at_us: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "actor": claims.actor(), "verb": LAUNCHED,
        "object": {"objectType": "Activity", "id": claims.activity},
        "context": {"registration": claims.registration,
                    "contextActivities": {"category": [{"id": f"{CMI5}/context/categories/cmi5"}]},
                    "extensions": {SESSION_EXTENSION: session, f"{CMI5}/context/extensions/launchmode": "Normal",
                                   f"{CMI5}/context/extensions/moveon": MOVE_ON}},
        "timestamp": iso(at_us),
    }


async def fetch(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTERY]
    key = m.config.mastery.class_key
    if not key:
        return _error(3, "mastery.class_key is not set: launches are off", 503)
    token = request.query.get("token", "")
    claims = launch.verify(key, token, time.time(), "fetch")
    if claims is None:
        return _error(1, "this launch link is not valid or has expired: open the lesson again", 400)
    now = now_us()
    if not await m.writer.run_db(lambda: m.store.use_fetch(claims.nonce, now)):
        return _error(1, "this launch link was already used: open the lesson again from the student page", 400)
    session = str(uuid.uuid4())
    data = json.dumps(launch_data(session, m.activity_skills.get(claims.activity))).encode()
    target = Target(STATE, claims.activity, claims.agent_key(), claims.registration, LAUNCH_DATA, None)
    op = docstore.DocWrite(target, "PUT", data, "application/json", None, None, now)
    items, _ = prepare_statements([launched_statement(claims, session, now)], "", now, m.activity_skills)
    await m.writer.write(op)
    if op.error is not None:
        raise op.error
    await store(m, items, now)
    auth = launch.Claims(claims.student, claims.home_page, claims.registration, claims.activity,
                         int(time.time() + m.config.mastery.launch_minutes * 60), "auth", claims.nonce)
    return json_response({"auth-token": launch.basic_credential(launch.issue(key, auth))})


def add_routes(app: web.Application) -> None:
    resource(app, "/launch/fetch", {"POST": fetch})

