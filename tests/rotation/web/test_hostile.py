"""Hostile and careless input to the rotation unit: each is refused cleanly (4xx JSON, or `edge: error:` and exit
1), changes nothing, and a good request still works afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from edge.cli import main
from edge.clock import FakeClock
from edge.config import EdgeConfig
from edge.rotation.service import RotationService, cue_for
from edge.rotation.web import create_app
from tests.rotation.plans import PLAN_TOML
from tests.rotation.web.helpers import PIN, TOKEN, Api, login, page_csrf

GOOD = {"name": "Science", "work_minutes": 10, "stations": [{"name": "Lab", "kind": "offline"}],
        "groups": [{"name": "Red"}]}
BEARER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def _post_raw(client: FlaskClient, path: str, text: str | bytes) -> Any:
    return client.post(f"/api/v1{path}", data=text, headers=BEARER)


# -- numbers ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    '{"name": "x", "work_minutes": NaN, "stations": [{"name": "a", "kind": "online"}], "groups": [{"name": "g"}]}',
    '{"name": "x", "work_minutes": Infinity, "stations": [{"name": "a", "kind": "online"}], "groups": [{"name": "g"}]}',
    '{"name": "x", "work_minutes": 1e308, "stations": [{"name": "a", "kind": "online"}], "groups": [{"name": "g"}]}',
    '{"name": "x", "work_minutes": 5e-324, "stations": [{"name": "a", "kind": "online"}], "groups": [{"name": "g"}]}',
    '{"name": "x", "work_minutes": 5, "rounds": 100000000000000000000, "stations": [{"name": "a", "kind": "online"}],'
    ' "groups": [{"name": "g"}]}',
    '{"name": "x", "work_minutes": 5, "rounds": ' + "9" * 5000 + ', "stations": [], "groups": []}',
    "[" * 100_000 + "]" * 100_000,
])
def test_unbounded_numbers_and_deep_json_are_refused(client: FlaskClient, api: Api, raw: str) -> None:
    resp = _post_raw(client, "/plans", raw)
    assert resp.status_code in (400, 422), resp.data[:300]
    body = resp.get_json()
    assert body["status"] == resp.status_code and body["error"]
    assert api("GET", "/plans").get_json()["plans"] == [{"name": "Math block", "stations": 4, "groups": 3,
                                                         "rounds": 4, "total_s": 3870}]
    assert api("POST", "/plans", json=GOOD).status_code == 201  # a good one still goes in


def test_every_json_answer_is_strict_json(client: FlaskClient, api: Api) -> None:
    def not_json(constant: str) -> None:
        pytest.fail(f"an answer held {constant}, which is not JSON")

    for path in ("/rotation", "/plans", "/periods", "/plans/Math%20block"):
        json.loads(client.get(f"/api/v1{path}", headers=BEARER).get_data(as_text=True), parse_constant=not_json)


def test_a_plan_file_saved_before_the_limits_shows_as_broken_with_delete(teacher: FlaskClient, api: Api,
                                                                         rotation: RotationService) -> None:
    bad = PLAN_TOML.replace('name = "Math block"', 'name = "Forever"').replace("work_minutes = 15",
                                                                                "work_minutes = inf")
    (rotation.plans.directory / "forever.toml").write_text(bad)
    huge = PLAN_TOML.replace('name = "Math block"', 'name = "Huge"').replace("rounds = 4", "rounds = 100000000")
    (rotation.plans.directory / "huge.toml").write_text(huge)
    page = teacher.get("/teacher")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "cannot be used" in text and "forever.toml" in text and "huge.toml" in text
    listed = api("GET", "/plans").get_json()
    assert [p["name"] for p in listed["plans"]] == ["Math block"] and len(listed["broken"]) == 2
    resp = teacher.post("/teacher/plan/delete", data={"name": "forever", "csrf_token": page_csrf(teacher)})
    assert resp.status_code == 302 and not (rotation.plans.directory / "forever.toml").exists()
    assert api("DELETE", "/plans/huge").status_code == 204
    assert teacher.get("/teacher").status_code == 200


# -- names -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a\x00b", "two\nlines", "tab\there", "\u202eevil", "x" * 65, "   ", "\ud800"])
def test_names_without_bounds_are_refused(api: Api, name: str) -> None:
    for doc in ({**GOOD, "name": name}, {**GOOD, "stations": [{"name": name, "kind": "online"}]},
                {**GOOD, "groups": [{"name": name}]}, {**GOOD, "groups": [{"name": "g", "members": [name]}]}):
        resp = api("POST", "/plans", json=doc)
        if name == "\ud800":  # sent as the escape "\ud800": refused as JSON that is not Unicode text
            assert resp.status_code == 400 and "lone surrogate" in resp.get_json()["error"], resp.get_json()
        else:
            assert resp.status_code == 422, (name, resp.get_json())
    assert api("POST", "/plans", json=GOOD).status_code == 201


def test_a_student_in_two_groups_and_every_problem_at_once(api: Api, teacher: FlaskClient) -> None:
    doc = {**GOOD, "work_minutes": 1, "warning_seconds": 90, "rounds": 99,
           "groups": [{"name": "A", "members": ["s-1"]}, {"name": "B", "members": ["s-1"]}]}
    body = api("POST", "/plans", json=doc).get_json()
    for key in ("plan.warning_seconds", "plan.rounds", "plan.groups[1].members[0]"):
        assert key in body["error"], body
    form = {"csrf_token": page_csrf(teacher, "/teacher/plan"), "name": "", "work_minutes": "NaN",
            "warning_seconds": "-3", "transition_seconds": "90", "rounds": "",
            "stations-0-name": "Lab", "stations-0-kind": "lab", "groups-0-name": "x" * 70}
    page = teacher.post("/teacher/plan", data=form)
    assert page.status_code == 422
    text = page.get_data(as_text=True)
    assert "these 5 problems" in text
    for label in ("Name:", "Work minutes:", "Warning seconds:", "Station 1 kind:", "Group 1 Name:"):
        assert label in text, label


# -- files users really produce ---------------------------------------------------------------------------

def _edge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd, env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"})


def test_latin1_config_and_plan_are_clear_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_bytes('[unit]\nroom = "Salle 12 é"\n'.encode("latin-1"))
    plan = tmp_path / "plan.toml"
    plan.write_bytes(PLAN_TOML.replace("Math block", "Mathé").encode("latin-1"))
    for args in (["doctor", "--config", str(cfg)], ["rotation", "preview", str(plan)]):
        proc = _edge(*args)
        assert proc.returncode == 1 and proc.stderr.startswith("edge: error: ") and "UTF-8" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_preview_into_a_closed_pipe_is_a_clear_error(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN_TOML.replace("rounds = 4", "rounds = 50"))
    proc = subprocess.run(f"{sys.executable} -m edge rotation preview {plan} --json | head -c 10", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    one = _edge("rotation", "preview", str(plan), "--json")  # the whole thing still works without `head`
    assert one.returncode == 0 and len(json.loads(one.stdout)) == 50 * 3 - 1


def test_save_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[unit]\nstate_dir = "{tmp_path}/state"\n')
    first, other = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(PLAN_TOML)
    other.write_text(PLAN_TOML.replace('name = "Math block"', 'name = "MATH-block"').replace("rounds = 4",
                                                                                             "rounds = 2"))
    assert main(["rotation", "save", str(first), "--config", str(cfg)]) == 0
    assert main(["rotation", "save", str(other), "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "edge: error:" in err and "'Math block'" in err and "--force" in err
    saved = tomllib.loads((tmp_path / "state" / "plans" / "math-block.toml").read_text())
    assert saved["plan"]["name"] == "Math block"  # the teacher's plan is still there
    assert main(["rotation", "save", str(other), "--config", str(cfg), "--force"]) == 0
    assert tomllib.loads((tmp_path / "state" / "plans" / "math-block.toml").read_text())["plan"]["rounds"] == 2


def test_rotation_run_with_a_plan_exits_when_it_is_done(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[unit]\nstate_dir = "{tmp_path}/state"\n')
    plan = tmp_path / "short.toml"
    plan.write_text('[plan]\nname = "Short"\nwork_minutes = 0.05\nwarning_seconds = 1\ntransition_seconds = 0\n'
                    '[[plan.stations]]\nname = "A"\nkind = "online"\n[[plan.groups]]\nname = "G"\n')
    proc = _edge("rotation", "run", str(plan), "--config", str(cfg))  # bounded by the 60 s timeout
    assert proc.returncode == 0, proc.stderr
    assert "DONE" in proc.stdout


# -- sessions ----------------------------------------------------------------------------------------------

def test_logout_revokes_the_session_on_the_server(client: FlaskClient) -> None:
    assert login(client).status_code == 302
    cookie = client.get_cookie("edge_session")
    assert cookie is not None
    stolen = cookie.value
    token = page_csrf(client)
    assert client.post("/teacher/logout", data={"csrf_token": token}).status_code == 302
    client.set_cookie("edge_session", stolen)  # the old cookie, replayed
    assert client.get("/teacher").status_code == 302
    assert client.get("/api/v1/plans").status_code == 401
    assert login(client).status_code == 302 and client.get("/teacher").status_code == 200


def test_a_new_pin_ends_every_session(make_config: Any, clock: FakeClock, mock_factory: Any) -> None:
    cfg: EdgeConfig = make_config(web={"teacher_pin": PIN})
    with RotationService(cfg, clock) as svc:
        client = create_app(cfg, svc).test_client()
        assert login(client).status_code == 302 and client.get("/teacher").status_code == 200
        newer = make_config(web={"teacher_pin": "9999"})
        client2 = create_app(newer, svc).test_client()
        client2.set_cookie("edge_session", client.get_cookie("edge_session").value)  # type: ignore[union-attr]
        assert client2.get("/teacher").status_code == 302


# -- bell periods and plans --------------------------------------------------------------------------------

def test_a_plan_a_period_starts_cannot_be_deleted(api: Api, teacher: FlaskClient,
                                                  rotation: RotationService) -> None:
    period = {"name": "Period 2", "plan": "Math block", "days": ["mon"], "start": "09:40"}
    assert api("PUT", "/periods", json={"periods": [period]}).status_code == 200
    resp = api("DELETE", "/plans/Math%20block")
    assert resp.status_code == 409 and "Period 2" in resp.get_json()["error"]
    page = teacher.post("/teacher/plan/delete", data={"name": "Math block", "csrf_token": page_csrf(teacher)},
                        follow_redirects=True).get_data(as_text=True)
    assert "Period 2" in page and "Change those periods first" in page
    assert rotation.plans.get("Math block").name == "Math block"
    assert api("PUT", "/periods", json={"periods": []}).status_code == 200
    assert api("DELETE", "/plans/Math%20block").status_code == 204


def test_a_period_whose_plan_is_missing_warns_and_faults_at_the_bell(make_config: Any, clock: FakeClock,
                                                                      mock_factory: Any) -> None:
    cfg: EdgeConfig = make_config(web={"teacher_pin": PIN}, rotation={
        "periods": [{"name": "Period 1", "plan": "Gone", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                     "start": "00:00"}]})
    with RotationService(cfg, clock) as svc:
        client = create_app(cfg, svc).test_client()
        assert login(client).status_code == 302
        page = client.get("/teacher").get_data(as_text=True)
        assert "The bell of Period 1" in page and "Gone" in page
        clock.advance(24 * 3600)  # past a bell
        svc.run_once()
        snap = svc.engine.snapshot()
        assert snap.status == "idle" and cue_for(snap) == "fault" and "Gone" in (snap.fault or "")
        assert "Gone" in client.get("/board").get_data(as_text=True)
