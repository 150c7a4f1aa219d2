"""Regroup by mastery on the teacher page and the API, reading the real mastery service on loopback: the
proposal, the teacher's changes, applying to a saved plan (never the running rotation), the history, and the
page's flow in Debian's Chromium (drag, keyboard, pin, apply) with screenshots."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from edge.app import AioServices
from edge.clock import FakeClock
from edge.config import EdgeConfig
from edge.mastery.app import start_mastery
from edge.rotation.plan import Group, Plan, Station
from edge.rotation.service import RotationService
from edge.rotation.web import create_app
from tests.net import free_port
from tests.rotation.web.helpers import PIN, TOKEN, login, page_csrf

SKILL = "fractions"
# 12 students: P(known) spread so that 3 groups of 4 fall out of the sorted order
STUDENTS = [f"s-{i:02d}" for i in range(12)]
CLASS = Plan(name="Fractions block", work_minutes=15, warning_seconds=60, transition_seconds=60,
             stations=(Station("Online", "online"), Station("Teacher", "teacher"), Station("Practice", "offline")),
             groups=(Group("Red", tuple(STUDENTS[0::3])), Group("Blue", tuple(STUDENTS[1::3])),
                     Group("Green", tuple(STUDENTS[2::3]))))


def _post_evidence(config: EdgeConfig) -> None:
    """Evidence that makes s-00..s-03 strong, s-04..s-07 middling, s-08..s-11 weak (s-11: one answer only)."""
    items = []
    for i, student in enumerate(STUDENTS):
        right = 6 if i < 4 else 3 if i < 8 else 0
        total = 1 if student == "s-11" else 6
        items += [{"id": f"{student}-{k}", "student": student, "skill": SKILL, "correct": int(k < right),
                   "timestamp": 1714557600 + k} for k in range(total)]
    auth = base64.b64encode(f"class:{config.mastery.class_key}".encode()).decode()
    req = urllib.request.Request(f"http://127.0.0.1:{config.mastery.port}/api/v1/evidence",
                                 data=json.dumps(items).encode(), method="POST",
                                 headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@pytest.fixture
def unit(make_config: Any, clock: FakeClock, mock_factory: Any) -> Iterator[tuple[EdgeConfig, RotationService]]:
    config: EdgeConfig = make_config(web={"teacher_pin": PIN, "api_token": TOKEN},
                                     mastery={"host": "127.0.0.1", "port": free_port(), "class_key": "k3y"})
    with AioServices(config, {"mastery": start_mastery}) as aio, RotationService(config, clock) as rotation:
        assert "mastery" in aio.runners
        rotation.plans.save(CLASS)
        _post_evidence(config)
        yield config, rotation


@pytest.fixture
def teacher_client(unit: tuple[EdgeConfig, RotationService]) -> FlaskClient:
    client = create_app(*unit).test_client()
    assert login(client).status_code == 302
    return client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_the_proposal_from_the_mastery_service(teacher_client: FlaskClient) -> None:
    resp = teacher_client.get(f"/api/v1/groups/proposal?plan={CLASS.name}&skill={SKILL}&min_size=3&max_size=5",
                              headers=AUTH)
    assert resp.status_code == 200, resp.get_json()
    doc = resp.get_json()
    groups = {g["name"]: set(g["students"]) for g in doc["groups"]}
    assert sorted(len(m) for m in groups.values()) == [4, 4, 4] and set(doc["thin"]) == {"s-11"}
    strong = next(n for n, m in groups.items() if {"s-00", "s-01"} <= m)
    assert doc["teacher_group"] != strong  # the weakest group starts at the teacher table, not the strongest
    assert doc["groups"][[g["name"] for g in doc["groups"]].index(doc["teacher_group"])]["first_station"] == "Teacher"


def test_applying_writes_the_saved_plan_not_the_running_rotation(teacher_client: FlaskClient,
                                                                 unit: tuple[EdgeConfig, RotationService]) -> None:
    _, rotation = unit
    rotation.engine.start(CLASS)
    proposal = teacher_client.get(f"/api/v1/groups/proposal?plan={CLASS.name}&skill={SKILL}", headers=AUTH).get_json()
    groups = [{"name": g["name"], "students": list(g["students"])} for g in proposal["groups"]]
    groups[0]["students"].append(groups[1]["students"].pop())  # the teacher moves one student
    resp = teacher_client.post("/api/v1/groups", headers=AUTH,
                               json={"plan": CLASS.name, "skill": SKILL, "groups": groups})
    assert resp.status_code == 200, resp.get_json()
    saved = rotation.plans.get(CLASS.name)
    assert {g.name: set(g.members) for g in saved.groups} == {g["name"]: set(g["students"]) for g in groups}
    assert rotation.engine.plan == CLASS  # the running rotation keeps its groups until the plan starts again
    history = teacher_client.get(f"/api/v1/groups/history?skill={SKILL}", headers=AUTH).get_json()
    assert len(history["groupings"]) == 1 and len(history["groupings"][0]["changes"]) == 1
    assert {c["name"] for c in history["change_since_last"]} == {g["name"] for g in groups}
    bad = teacher_client.post("/api/v1/groups", headers=AUTH, json={"plan": CLASS.name, "skill": SKILL,
                                                                    "groups": groups[:1]})
    assert bad.status_code == 422 and "in no group" in bad.get_json()["error"]


def test_a_silent_mastery_service_is_a_503_and_bad_parameters_a_422(make_config: Any, clock: FakeClock,
                                                                     mock_factory: Any) -> None:
    config: EdgeConfig = make_config(web={"api_token": TOKEN},
                                     mastery={"host": "127.0.0.1", "port": free_port(), "class_key": "k"})
    with RotationService(config, clock) as rotation:
        rotation.plans.save(CLASS)
        client = create_app(config, rotation).test_client()
        resp = client.get(f"/api/v1/groups/proposal?plan={CLASS.name}&skill={SKILL}", headers=AUTH)
        assert resp.status_code == 503 and "does not answer" in resp.get_json()["error"]
        for query in ("plan=Nope", f"plan={CLASS.name}&min_size=9&max_size=2", f"plan={CLASS.name}&mode=random",
                      f"plan={CLASS.name}&groups=x"):
            resp = client.get(f"/api/v1/groups/proposal?{query}&skill={SKILL}", headers=AUTH)
            assert resp.status_code == 422, query


def test_the_page_proposes_takes_pins_and_absent_and_applies(teacher_client: FlaskClient,
                                                             unit: tuple[EdgeConfig, RotationService]) -> None:
    page = teacher_client.get(f"/teacher/regroup?plan={CLASS.name}&skill={SKILL}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert text.count('<li class="card') == 12 and "◌ thin" in text and "starts at the teacher table" in text
    # re-propose with s-00 pinned to Green and s-05 absent, as the page's own form sends it
    form: dict[str, Any] = {"plan": CLASS.name, "skill": SKILL, "previous": "1", "student": STUDENTS,
                            "pin:s-00": "1", "absent:s-05": "1"}
    for s in STUDENTS:
        form[f"group:{s}"] = "Green" if s == "s-00" else "Red"
    again = teacher_client.get("/teacher/regroup", query_string=form).get_data(as_text=True)
    assert again.count('<li class="card') == 11 and "Absent today (left out): s-05" in again
    green = again.split('data-group="Green"')[1].split("</section>")[0]
    assert 'data-student="s-00"' in green
    # apply what the page shows
    post = {**form, "csrf_token": page_csrf(teacher_client), "absent": "s-05"}
    post["student"] = [s for s in STUDENTS if s != "s-05"]
    resp = teacher_client.post("/teacher/regroup/apply", data=post, follow_redirects=True)
    assert "Applied to" in resp.get_data(as_text=True)
    saved = unit[1].plans.get(CLASS.name)
    assert "s-00" in next(g for g in saved.groups if g.name == "Green").members


@pytest.mark.browser
def test_the_regroup_page_in_chromium(unit: tuple[EdgeConfig, RotationService], tmp_path: Path) -> None:
    from tests.browser import ARTIFACTS, chromium, serve_app

    config, rotation = unit
    with serve_app(create_app(config, rotation)) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.goto(f"{url}/teacher/login")
        page.fill("#pin", PIN)
        page.click("button[type=submit]")
        page.goto(f"{url}/teacher/regroup?plan={CLASS.name}&skill={SKILL}")
        page.wait_for_selector(".group-column")
        page.screenshot(path=str(ARTIFACTS / "regroup-proposal.png"), full_page=True)
        # keyboard: focus s-04's Group list and choose Blue with the arrow keys; the card moves column
        select = page.locator('select[name="group:s-04"]')
        select.focus()
        page.keyboard.press("End")
        target = select.evaluate("el => el.value")
        assert page.locator(f'.group-column[data-group="{target}"] .card[data-student="s-04"]').count() == 1
        # mouse: drag s-08's card onto the first column
        first = page.locator(".group-column").first
        page.locator('.card[data-student="s-08"]').drag_to(first)
        first_name = first.get_attribute("data-group")
        assert page.locator('select[name="group:s-08"]').evaluate("el => el.value") == first_name
        page.screenshot(path=str(ARTIFACTS / "regroup-edited.png"), full_page=True)
        page.click("#apply")
        page.wait_for_selector(".flash-ok")
        assert "Applied to" in page.inner_text(".flash-ok")
    saved = {g.name: set(g.members) for g in rotation.plans.get(CLASS.name).groups}
    assert "s-04" in saved[target] and "s-08" in saved[first_name]
