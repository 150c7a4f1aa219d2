"""No default teacher PIN ships (issue 12): on an imaged unit the first boot writes a one-time setup code beside
edge.toml; the station board shows it while no PIN is set and /teacher asks for it with a new PIN. A provisioning
fault (a rejected card file) shows as the fault cue."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from edge.clock import FakeClock
from edge.config import EdgeConfig
from edge.image.status import SETUP_FILE, STATUS_FILE
from edge.rotation.service import RotationService, cue_for
from edge.rotation.web import create_app
from edge.rotation.web.teacherpin import PIN_FILE
from tests.rotation.web.helpers import csrf_of, login

CODE = "73019482"


def write_setup(etc: Path, code: str = CODE, ident: str = "a1b2c3d4e5f60718") -> None:
    (etc / SETUP_FILE).write_text(json.dumps({"version": 1, "code": code, "id": ident,
                                              "created_at": "2026-11-30T08:00:00Z"}))


@pytest.fixture
def unit(make_config: Any, tmp_path: Path, clock: FakeClock, mock_factory: Any) -> Iterator[RotationService]:
    """A freshly imaged unit: no teacher_pin in edge.toml, the first boot's setup code beside it."""
    write_setup(tmp_path)
    cfg: EdgeConfig = make_config()
    svc = RotationService(cfg, clock)
    yield svc
    svc.devices.close()


@pytest.fixture
def setup_client(unit: RotationService) -> FlaskClient:
    app: Flask = create_app(unit.config, unit)
    return app.test_client()


def set_pin(client: FlaskClient, code: str, pin: str, confirm: str | None = None) -> Any:
    token = csrf_of(client.get("/teacher/setup").get_data(as_text=True))
    return client.post("/teacher/setup", data={"code": code, "pin": pin, "confirm": confirm or pin,
                                               "csrf_token": token})


def test_the_board_shows_the_code_and_the_teacher_sets_a_pin_with_it(setup_client: FlaskClient,
                                                                      tmp_path: Path) -> None:
    c = setup_client
    board = c.get("/board").get_data(as_text=True)
    assert 'id="setup-code"' in board and "7301 9482" in board
    assert c.get("/api/v1/rotation").get_json()["teacher_setup"] is True
    assert CODE not in c.get("/api/v1/rotation").get_data(as_text=True)  # the code is on the board only
    # first use of /teacher leads to the setup form
    r = c.get("/teacher")
    assert r.status_code == 302 and "/teacher/login" in r.headers["Location"]
    r = c.get(r.headers["Location"])
    assert r.status_code == 302 and "/teacher/setup" in r.headers["Location"]
    assert c.get("/teacher/setup").status_code == 200
    # wrong code, a PIN that is not 4-12 digits, two different PINs: refused, nothing stored
    assert set_pin(c, "11112222", "2468").status_code == 401
    assert set_pin(c, CODE, "12ab").status_code == 400
    assert set_pin(c, CODE, "2468", "2469").status_code == 400
    assert not (tmp_path / "state" / PIN_FILE).exists()
    # the right code: the PIN is set, the teacher is logged in
    r = set_pin(c, "7301 9482", "2468")
    assert r.status_code == 302 and r.headers["Location"].endswith("/teacher")
    assert c.get("/teacher").status_code == 200
    stored = tmp_path / "state" / PIN_FILE
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and "2468" not in stored.read_text()
    # the code is spent: off the board, setup refused, the PIN logs in
    assert 'id="setup-code"' not in c.get("/board").get_data(as_text=True)
    assert c.get("/api/v1/rotation").get_json()["teacher_setup"] is False
    assert c.get("/teacher/setup").status_code == 302
    c.post("/teacher/logout", data={"csrf_token": csrf_of(c.get("/teacher").get_data(as_text=True))})
    assert login(c, "1357").status_code == 401
    assert login(c, "2468").status_code == 302


def test_a_new_setup_file_lets_the_room_set_the_pin_again(setup_client: FlaskClient, tmp_path: Path) -> None:
    c = setup_client
    assert set_pin(c, CODE, "2468").status_code == 302
    # IT deletes the file and reboots: the first boot makes a new code with a new id
    write_setup(tmp_path, "55501234", "ffffeeeeddddcccc")
    assert c.get("/teacher").status_code == 302  # the old PIN's session ended with it
    assert "5550 1234" in c.get("/board").get_data(as_text=True)
    assert set_pin(c, CODE, "9999").status_code == 401  # the old code is spent
    assert set_pin(c, "55501234", "9999").status_code == 302
    c.post("/teacher/logout", data={"csrf_token": csrf_of(c.get("/teacher").get_data(as_text=True))})
    assert login(c, "2468").status_code == 401 and login(c, "9999").status_code == 302


def test_wrong_setup_codes_are_rate_limited(setup_client: FlaskClient) -> None:
    statuses = [set_pin(setup_client, f"{n:08d}", "2468").status_code for n in range(12)]
    assert statuses[0] == 401 and statuses[-1] == 429
    assert set_pin(setup_client, CODE, "2468").status_code == 429  # even the right code waits


def test_a_pin_in_edge_toml_wins_and_no_code_is_shown(make_config: Any, tmp_path: Path, clock: FakeClock,
                                                      mock_factory: Any) -> None:
    write_setup(tmp_path)
    cfg: EdgeConfig = make_config(web={"teacher_pin": "8642"})
    with RotationService(cfg, clock) as svc:
        c = create_app(cfg, svc).test_client()
        assert 'id="setup-code"' not in c.get("/board").get_data(as_text=True)
        assert c.get("/teacher/setup").status_code == 302
        assert login(c, "8642").status_code == 302


def test_no_pin_and_no_setup_code_keeps_teacher_control_disabled(make_config: Any, clock: FakeClock,
                                                                  mock_factory: Any) -> None:
    cfg: EdgeConfig = make_config()
    with RotationService(cfg, clock) as svc:
        c = create_app(cfg, svc).test_client()
        assert 'id="disabled"' in c.get("/teacher/login").get_data(as_text=True)
        assert c.get("/teacher/setup").status_code == 302


def test_a_rejected_card_file_shows_the_fault_cue(make_config: Any, tmp_path: Path, clock: FakeClock,
                                                  mock_factory: Any) -> None:
    (tmp_path / STATUS_FILE).write_text(json.dumps({"version": 1, "state": "fault", "fault": True,
                                                    "reason": "classroom-edge.toml: web.port: must be a TCP port"}))
    cfg: EdgeConfig = make_config()
    with RotationService(cfg, clock) as svc:
        snap = svc.engine.snapshot()
        assert cue_for(snap) == "fault" and "web.port: must be a TCP port" in str(snap.fault)
        svc.button_action("toggle")  # someone in the room acknowledges it
        assert cue_for(svc.engine.snapshot()) != "fault"
    (tmp_path / STATUS_FILE).write_text(json.dumps({"version": 1, "state": "ok", "fault": False, "reason": None}))
    with RotationService(cfg, clock) as svc:
        assert svc.engine.snapshot().fault is None
