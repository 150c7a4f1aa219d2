"""The JSON API: every answer validated against /api/v1/openapi.json, auth by bearer token or session + CSRF."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from edge.clock import FakeClock
from edge.rotation.service import RotationService
from tests.rotation.web.helpers import Api, OpenApi, page_csrf

MATH = {
    "name": "Science", "work_minutes": 10, "warning_seconds": 30, "transition_seconds": 60, "rounds": 0,
    "stations": [{"name": "Lab", "kind": "offline"}, {"name": "Video", "kind": "online",
                                                     "lessons": ["district/cells/video.html"]}],
    "groups": [{"name": "Red", "members": ["s-1", "s-2"]}, {"name": "Blue"}],
}


def test_openapi_document_is_valid_and_served(client: FlaskClient) -> None:
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    validate(resp.get_json())


def test_every_api_route_is_documented_and_every_documented_path_exists(app: Flask, openapi: OpenApi) -> None:
    served: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule.removeprefix("/api/v1")
        paths = [path]
        if m := re.search(r"<any\(([^)]*)\):\w+>", path):
            paths = [path.replace(m[0], a.strip()) for a in m[1].split(",")]
        for p in paths:
            p = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", p)
            served |= {(p, meth.lower()) for meth in rule.methods or () if meth not in ("HEAD", "OPTIONS")}
    documented = {(p, m) for p, ops in openapi.doc["paths"].items() for m in ops if m != "parameters"}
    assert served == documented


def test_rotation_state_is_public_and_idle(api: Api) -> None:
    body = api("GET", "/rotation", token=False).get_json()
    assert body["status"] == "idle" and body["phase_word"] == "IDLE"
    assert body["groups"] == [] and body["phase_ends_at"] is None


def test_start_pause_resume_extend_skip_restart_end(api: Api, clock: FakeClock) -> None:
    s = api("POST", "/rotation/start", json={"plan": "Math block"}).get_json()
    assert (s["status"], s["phase"], s["phase_word"], s["round"], s["rounds"]) == ("running", "work", "WORK", 1, 4)
    assert s["assignments"] == {"A": "Online", "B": "Teacher", "C": "Practice"}
    assert list(s["assignments"]) == s["groups"] == ["A", "B", "C"]  # plan order, not sorted
    assert s["next_assignments"] == {"A": "Teacher", "B": "Practice", "C": "Games"}
    assert s["remaining_s"] == 840 and s["stage_remaining_s"] == 900 and s["countdown_text"] == "15:00"
    assert s["phase_ends_at"] == pytest.approx(clock.time() + 840)
    assert s["stations"][0] == {"name": "Online", "kind": "online", "lessons": ["district/fractions/intro.html"]}
    clock.advance(40)
    s = api("POST", "/rotation/pause").get_json()
    assert (s["status"], s["phase_word"], s["remaining_s"], s["phase_ends_at"]) == ("paused", "PAUSED", 800, None)
    clock.advance(500)
    s = api("POST", "/rotation/resume").get_json()
    assert s["remaining_s"] == 800
    s = api("POST", "/rotation/extend").get_json()
    assert s["remaining_s"] == 860
    s = api("POST", "/rotation/skip").get_json()
    assert (s["phase"], s["phase_word"], s["remaining_s"]) == ("warning", "1 MIN LEFT", 60)
    s = api("POST", "/rotation/skip").get_json()
    assert (s["phase"], s["phase_word"], s["round"]) == ("transition", "MOVE", 2)
    s = api("POST", "/rotation/restart").get_json()
    assert (s["phase"], s["round"], s["remaining_s"]) == ("work", 2, 840)
    s = api("POST", "/rotation/end").get_json()
    assert (s["status"], s["phase_word"], s["assignments"]) == ("done", "DONE", {})


def test_action_errors_are_json(api: Api) -> None:
    resp = api("POST", "/rotation/pause")
    assert resp.status_code == 409 and resp.get_json() == {"error": "cannot pause: the rotation is idle", "status": 409}
    resp = api("POST", "/rotation/start", json={"plan": "Nope"})
    assert resp.status_code == 404 and "Nope" in resp.get_json()["error"]
    assert api("POST", "/rotation/start").status_code == 400
    assert api("POST", "/rotation/start", data="[1]", content_type="application/json").status_code == 400
    api("POST", "/rotation/start", json={"plan": "Math block"})
    resp = api("POST", "/rotation/start", json={"plan": "Math block"})
    assert resp.status_code == 409 and "end the running plan first" in resp.get_json()["error"]


def test_unknown_routes_and_methods_are_json_errors(client: FlaskClient) -> None:
    resp = client.post("/api/v1/rotation/explode", headers={"Authorization": "Bearer secret-api-token"})
    assert resp.status_code == 404 and "error" in resp.get_json()
    resp = client.delete("/api/v1/rotation")
    assert resp.status_code == 405 and "error" in resp.get_json()


@pytest.mark.parametrize(("headers", "message"), [
    ({}, "log in as the teacher"),
    ({"Authorization": "Bearer wrong"}, "invalid bearer token"),
    ({"Authorization": "Basic c2VjcmV0LWFwaS10b2tlbg=="}, "invalid bearer token"),
])
def test_writes_need_the_token_or_a_session(api: Api, headers: dict[str, str], message: str) -> None:
    for method, path in (("POST", "/rotation/pause"), ("GET", "/plans"), ("DELETE", "/plans/Math block"),
                         ("GET", "/periods")):
        resp = api(method, path, token=False, headers=headers)
        assert resp.status_code == 401, (method, path)
        assert message in resp.get_json()["error"]
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_empty_api_token_accepts_no_bearer(make_config: Any, clock: FakeClock, mock_factory: Any) -> None:
    from edge.rotation.web import create_app

    cfg = make_config(web={"teacher_pin": "1"})
    svc = RotationService(cfg, clock)
    try:
        client = create_app(cfg, svc).test_client()
        for header in ("Bearer ", "Bearer", "Bearer  "):
            assert client.post("/api/v1/rotation/end", headers={"Authorization": header}).status_code == 401
    finally:
        svc.devices.close()


def test_session_writes_need_the_csrf_header(teacher: FlaskClient, api: Api) -> None:
    resp = api("POST", "/rotation/start", token=False, json={"plan": "Math block"})
    assert resp.status_code == 403 and "CSRF" in resp.get_json()["error"]
    resp = api("POST", "/rotation/start", token=False, csrf="forged", json={"plan": "Math block"})
    assert resp.status_code == 403
    csrf = page_csrf(teacher)
    resp = api("POST", "/rotation/start", token=False, csrf=csrf, json={"plan": "Math block"})
    assert resp.status_code == 200
    assert api("GET", "/plans", token=False).status_code == 200  # reads need no CSRF token


def test_plan_crud(api: Api) -> None:
    listing = api("GET", "/plans").get_json()
    assert [p["name"] for p in listing["plans"]] == ["Math block"] and listing["broken"] == []
    resp = api("POST", "/plans", json=MATH)
    assert resp.status_code == 201 and resp.headers["Location"] == "/api/v1/plans/Science"
    assert api("GET", "/plans/Science").get_json() == MATH
    assert api("POST", "/plans", json=MATH).status_code == 409
    changed = {**MATH, "work_minutes": 12, "rounds": 3}
    assert api("PUT", "/plans/Science", json=changed).get_json()["work_minutes"] == 12
    assert api("GET", "/plans/Science").get_json()["rounds"] == 3
    summary = {p["name"]: p for p in api("GET", "/plans").get_json()["plans"]}["Science"]
    assert summary == {"name": "Science", "stations": 2, "groups": 2, "rounds": 3, "total_s": 3 * 720 + 2 * 60}
    assert api("DELETE", "/plans/Science").status_code == 204
    assert api("GET", "/plans/Science").status_code == 404
    assert api("DELETE", "/plans/Science").status_code == 404


def test_put_creates_and_name_must_match_url(api: Api) -> None:
    body = {k: v for k, v in MATH.items() if k != "name"}
    assert api("PUT", "/plans/Science", json=body).status_code == 200  # name taken from the URL
    resp = api("PUT", "/plans/Other", json=MATH)
    assert resp.status_code == 422 and resp.get_json()["key"] == "plan.name"


@pytest.mark.parametrize(("patch", "key", "reason"), [
    ({"work_minutes": -1}, "plan.work_minutes", "must be greater than 0, got -1"),
    ({"warning_seconds": 900}, "plan.warning_seconds", "must be shorter than the work period (600 s)"),
    ({"stations": [{"name": "Lab", "kind": "outside"}]}, "plan.stations[0].kind",
     "must be one of online, teacher, offline, got 'outside'"),
    ({"stations": [{"name": "Lab", "kind": "online", "lessons": ["../etc/passwd"]}]}, "plan.stations[0].lessons[0]",
     "must be a cache path"),
    ({"groups": []}, "plan.groups", "must not be empty"),
    ({"colour": "red"}, "plan.colour", "unknown key"),
])
def test_plan_validation_errors_name_key_and_reason(api: Api, patch: dict[str, Any], key: str, reason: str) -> None:
    resp = api("POST", "/plans", json={**MATH, **patch})
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["key"] == key and reason in body["reason"]
    assert body["error"] == f"<request body>: {key}: {body['reason']}"


def test_periods_api(api: Api, rotation: RotationService) -> None:
    assert api("GET", "/periods").get_json() == {"periods": [], "config_periods": []}
    period = {"name": "Period 2", "plan": "Math block", "days": ["mon", "wed"], "start": "09:40"}
    assert api("PUT", "/periods", json={"periods": [period]}).get_json()["periods"] == [period]
    assert api("GET", "/periods").get_json()["periods"] == [period]
    resp = api("PUT", "/periods", json={"periods": [{**period, "start": "25:00"}]})
    assert resp.status_code == 422 and resp.get_json()["key"] == "periods[0].start"
    resp = api("PUT", "/periods", json={"periods": [{**period, "plan": "Nope"}]})
    assert resp.get_json()["key"] == "periods[0].plan" and "no saved plan" in resp.get_json()["reason"]
    resp = api("PUT", "/periods", json={"periods": [period, period]})
    assert resp.get_json()["key"] == "periods[1].name"
    assert api("PUT", "/periods", json={"periods": "x"}).status_code == 422


def test_corrupt_period_file_is_a_conflict_until_replaced(api: Api, rotation: RotationService) -> None:
    path = rotation.config.state_dir / "periods.json"
    path.write_text("{broken")
    assert api("GET", "/periods").status_code == 409
    assert api("PUT", "/periods", json={"periods": []}).status_code == 200
    assert api("GET", "/periods").get_json()["periods"] == []


def test_api_never_sends_student_ids_publicly(api: Api) -> None:
    api("POST", "/rotation/start", json={"plan": "Math block"})
    assert b"s-101" not in api("GET", "/rotation", token=False).data
    assert api("GET", "/plans/Math block").get_json()["groups"][0]["members"] == ["s-101", "s-102"]
