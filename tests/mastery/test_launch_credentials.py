"""Launch credentials on the LRS: scoped to one student (403 for anything of another), expiring, and the
cmi5 fetch URL (one use; writes LMS.LaunchData)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient

from edge import launch
from tests.mastery.test_service import AUTH, KEY, make_config, serve, statement

HOME = "https://classroom-edge.invalid/students"  # mastery.account_home_page (the default)
ACTIVITY = "https://lessons.example/fractions/q1"


def credential(student: str, *, lifetime: float = 600, key: str = KEY) -> dict[str, str]:
    claims = launch.new_claims(student, HOME, ACTIVITY, time.time(), lifetime, "auth")
    return {"Authorization": "Basic " + launch.basic_credential(launch.issue(key, claims)),
            "X-Experience-API-Version": "1.0.3"}


def own(student: str) -> dict[str, Any]:
    st = statement(student, "fractions", True, "2024-05-01T10:00:00Z")
    st["actor"] = {"objectType": "Agent", "account": {"homePage": HOME, "name": student}}
    return st


def state_url(student: str, registration: str | None = None) -> str:
    params = {"activityId": ACTIVITY, "stateId": "resume",
              "agent": json.dumps({"account": {"homePage": HOME, "name": student}})}
    if registration:
        params["registration"] = registration
    return "/xapi/activities/state?" + urlencode(params)


def test_a_students_credential_writes_and_reads_only_their_own(tmp_path: Path) -> None:
    a, b = credential("stu-a"), credential("stu-b")

    async def body(c: TestClient[Any, Any]) -> None:
        assert (await c.post("/xapi/statements", json=own("stu-a"), headers=a)).status == 200
        r = await c.post("/xapi/statements", json=[own("stu-a"), own("stu-b")], headers=a)
        assert r.status == 403 and (await r.json())["key"] == "actor"  # nothing of the request is stored
        assert (await c.put(state_url("stu-a"), json={"page": 2}, headers=a)).status == 204
        assert (await c.get(state_url("stu-a"), headers=a)).status == 200
        assert (await c.put(state_url("stu-b"), json={"page": 9}, headers=b)).status == 204
        assert (await c.get(state_url("stu-b"), headers=a)).status == 403
        assert (await c.put(state_url("stu-b"), json={"page": 1}, headers=a)).status == 403
        assert (await c.get(state_url("stu-a", "00000000-0000-4000-8000-000000000000"), headers=a)).status == 403
        voiding = {**own("stu-a"), "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                   "object": {"objectType": "StatementRef", "id": "00000000-0000-4000-8000-000000000001"}}
        del voiding["result"], voiding["context"]
        assert (await c.post("/xapi/statements", json=voiding, headers=a)).status == 403  # cmi5: AUs never void
        agent_a = json.dumps({"account": {"homePage": HOME, "name": "stu-a"}})
        assert (await c.get("/xapi/statements", headers=a)).status == 403  # a query must name the student
        r = await c.get("/xapi/statements?" + urlencode({"agent": agent_a}), headers=a)
        assert r.status == 200 and len((await r.json())["statements"]) == 1
        assert (await c.post("/api/v1/evidence", json=[], headers=a)).status == 401  # class key only
        assert (await c.get("/api/v1/mastery?skill=fractions", headers=a)).status == 401
        students = (await (await c.get("/api/v1/mastery?skill=fractions", headers=AUTH)).json())["students"]
        assert [(s["student"], s["responses"]) for s in students] == [("stu-a", 1)]

    serve(make_config(tmp_path), body, {ACTIVITY: "fractions"})


def test_expired_forged_and_foreign_credentials_are_refused(tmp_path: Path) -> None:
    expired = credential("stu-a", lifetime=-1)
    foreign = credential("stu-a", key="another-unit's-key")
    genuine = credential("stu-a")
    payload, _, sig = base64.b64decode(genuine["Authorization"][6:]).decode().partition(":")[2].partition(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_payload = base64.urlsafe_b64encode(json.dumps({**doc, "s": "stu-b"}).encode()).decode().rstrip("=")
    forged = {**genuine, "Authorization": "Basic " + launch.basic_credential(f"{forged_payload}.{sig}")}

    async def body(c: TestClient[Any, Any]) -> None:
        for headers in (expired, foreign, forged):
            r = await c.post("/xapi/statements", json=own("stu-a"), headers=headers)
            assert r.status == 401 and "student page" in (await r.json())["error"]

    serve(make_config(tmp_path), body)


def test_the_cmi5_fetch_url_works_once_and_writes_launch_data(tmp_path: Path) -> None:
    claims = launch.new_claims("stu-a", HOME, ACTIVITY, time.time(), 600, "fetch")
    fetch_url = "/launch/fetch?" + urlencode({"token": launch.issue(KEY, claims)})

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.post(fetch_url, headers={"Origin": "http://127.0.0.1:8080"})
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8080"
        headers = {"Authorization": "Basic " + (await r.json())["auth-token"], "X-Experience-API-Version": "1.0.3"}
        r = await c.post(fetch_url)
        assert r.status == 400 and (await r.json())["error-code"] == "1"  # one use
        params = {"activityId": ACTIVITY, "stateId": "LMS.LaunchData", "registration": claims.registration,
                  "agent": json.dumps(claims.actor())}
        r = await c.get("/xapi/activities/state?" + urlencode(params), headers=headers)
        data = await r.json()
        assert r.status == 200 and data["launchMode"] == "Normal" and data["moveOn"] == "CompletedOrPassed"
        context = data["contextTemplate"]["extensions"]
        assert context["https://w3id.org/xapi/cmi5/context/extensions/sessionid"]
        assert context["https://w3id.org/xapi/classroom-edge/extensions/skill"] == "fractions"  # from the manifest
        agent = json.dumps({"account": {"homePage": HOME, "name": "stu-a"}})
        doc = await (await c.get("/xapi/statements?" + urlencode({"agent": agent}), headers=headers)).json()
        assert [s["verb"]["id"] for s in doc["statements"]] == ["http://adlnet.gov/expapi/verbs/launched"]
        r = await c.post("/launch/fetch?token=garbage")
        assert r.status == 400 and (await r.json())["error-code"] == "1"

    serve(make_config(tmp_path), body, {ACTIVITY: "fractions"})
