"""The pages through flask's test client: student, board, teacher controls, plan and period editors."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from edge.clock import FakeClock
from edge.config import PeriodConfig
from edge.rotation.periods import PeriodStore, saved_periods
from edge.rotation.service import RotationService
from edge.rotation.web.forms import Form
from tests.rotation.web.helpers import page_csrf


def text(client: FlaskClient, path: str) -> str:
    resp = client.get(path)
    assert resp.status_code == 200, (path, resp.status_code)
    return resp.get_data(as_text=True)


def test_pages_send_security_headers(client: FlaskClient) -> None:
    resp = client.get("/board")
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/teacher/login").headers["Cache-Control"] == "no-store"
    assert client.get("/static/live.js").status_code == 200


def test_board_idle_then_running(client: FlaskClient, rotation: RotationService, math_plan: Any) -> None:
    page = text(client, "/board")
    assert 'data-phase="idle"' in page and ">IDLE<" in page and "No rotation running" in page
    rotation.engine.start(math_plan)
    page = text(client, "/board")
    assert 'data-phase="work"' in page and ">WORK<" in page and ">15:00<" in page
    assert "Round 1 of 4 · Math block" in page
    rows = re.findall(r'<tr><th scope="row">(\w)</th><td>(\w+)</td><td>(\w+)</td></tr>', page)
    assert rows == [("A", "Online", "Teacher"), ("B", "Teacher", "Practice"), ("C", "Practice", "Games")]
    assert 'data-poll-ms="500"' in page
    assert "s-101" not in page


def test_board_shows_a_fault(config: Any, clock: FakeClock, mock_factory: Any) -> None:
    from edge.rotation.web import create_app

    config.state_dir.mkdir(parents=True)
    (config.state_dir / "rotation.json").write_text("{not json")
    svc = RotationService(config, clock)
    try:
        page = create_app(config, svc).test_client().get("/board").get_data(as_text=True)
        assert "saved rotation state was corrupt" in page
    finally:
        svc.devices.close()


def test_student_page_group_station_and_lesson_links(client: FlaskClient, rotation: RotationService,
                                                     math_plan: Any) -> None:
    page = text(client, "/")
    assert "No rotation is running right now." in page and "appear here when the rotation starts" in page
    assert "Pick your group above." not in page  # no group buttons while idle: no dead end
    rotation.engine.start(math_plan)
    page = text(client, "/?group=A")
    assert ('Group <span class="name" title="A">A</span>: go to '
            '<strong id="my-station" class="name" title="Online">Online</strong>') in page
    assert "Next: Teacher" in page
    assert ('<a href="http://localhost:8080/district/fractions/intro.html" title="district/fractions/intro.html">'
            'intro.html</a>') in page
    assert 'href="/?group=A" aria-current="true"' in page
    page = text(client, "/?group=B")
    assert "go to <strong" in page and "No lesson links at this station." in page
    page = text(client, "/?group=Z")
    assert '<span class="name" title="Z">Z</span> is not in this rotation.' in page and "Pick your group above." in page


def test_lesson_links_use_the_host_the_chromebook_used(client: FlaskClient, rotation: RotationService,
                                                      math_plan: Any) -> None:
    rotation.engine.start(math_plan)
    page = client.get("/?group=A", headers={"Host": "room12.local:8000"}).get_data(as_text=True)
    assert 'href="http://room12.local:8080/district/fractions/intro.html"' in page
    page = client.get("/?group=A", headers={"Host": "[fe80::1]:8000"}).get_data(as_text=True)
    assert 'data-lesson-base="http://[fe80::1]:8080/"' in page


def test_teacher_controls_act_on_the_engine(teacher: FlaskClient, rotation: RotationService,
                                            clock: FakeClock) -> None:
    page = text(teacher, "/teacher")
    assert '<option value="Math block">' in page
    assert re.search(r'id="btn-pause" data-when="running" disabled', page)
    csrf = page_csrf(teacher)
    resp = teacher.post("/teacher/act/start", data={"plan": "Math block", "csrf_token": csrf},
                        follow_redirects=True)
    assert "Started Math block." in resp.get_data(as_text=True)
    for action, status, flash in [("pause", "paused", "Paused."), ("extend", "paused", "Added a minute."),
                                  ("resume", "running", "Resumed."), ("skip", "running", "Skipped"),
                                  ("restart", "running", "Restarted the round."), ("end", "done", "Ended")]:
        page = teacher.post(f"/teacher/act/{action}", data={"csrf_token": csrf},
                            follow_redirects=True).get_data(as_text=True)
        assert flash in page, action
        assert rotation.engine.snapshot().status == status
    page = teacher.post("/teacher/act/pause", data={"csrf_token": csrf}, follow_redirects=True).get_data(as_text=True)
    assert "Cannot pause: the rotation is done." in page
    page = teacher.post("/teacher/act/start", data={"plan": "Gone", "csrf_token": csrf},
                        follow_redirects=True).get_data(as_text=True)
    assert "Cannot start: no saved plan by that name" in page


def test_one_engine_behind_button_page_and_api(teacher: FlaskClient, rotation: RotationService,
                                               mock_factory: Any) -> None:
    csrf = page_csrf(teacher)
    teacher.post("/teacher/act/start", data={"plan": "Math block", "csrf_token": csrf})
    pin = mock_factory.pin(27)  # the teacher button: a short press pauses
    pin.drive_low()
    pin.drive_high()
    assert teacher.get("/api/v1/rotation").get_json()["phase_word"] == "PAUSED"
    assert ">PAUSED<" in text(teacher, "/board")
    teacher.post("/api/v1/rotation/resume", headers={"X-CSRF-Token": csrf})
    assert ">WORK<" in text(teacher, "/teacher")


def plan_form(**over: str) -> dict[str, str]:
    form = {"name": "Reading", "work_minutes": "12", "warning_seconds": "60", "transition_seconds": "60",
            "rounds": "", "original": "",
            "stations-0-name": "Books", "stations-0-kind": "offline", "stations-0-lessons": "",
            "stations-1-name": "", "stations-1-kind": "offline", "stations-1-lessons": "",
            "stations-2-name": "Tablets", "stations-2-kind": "online",
            "stations-2-lessons": "district/read/a.html\r\ndistrict/read/b.html\r\n",
            "groups-0-name": "Owls", "groups-0-members": "s-1, s-2 s-3",
            "groups-1-name": "Foxes", "groups-1-members": "", "groups-2-name": "", "groups-2-members": ""}
    form.update(over)
    return form


def test_new_plan_form_saves_a_plan(teacher: FlaskClient, rotation: RotationService) -> None:
    page = text(teacher, "/teacher/plan")
    assert "New plan" in page and 'name="stations-1-name"' in page
    resp = teacher.post("/teacher/plan", data={**plan_form(), "csrf_token": page_csrf(teacher)})
    assert resp.status_code == 302
    plan = rotation.plans.get("Reading")
    assert [s.name for s in plan.stations] == ["Books", "Tablets"]  # the blank row is left out
    assert plan.stations[1].lessons == ("district/read/a.html", "district/read/b.html")
    assert plan.groups[0].members == ("s-1", "s-2", "s-3") and plan.rounds == 0
    assert "Saved the plan &#39;Reading&#39;." in text(teacher, "/teacher")


@pytest.mark.parametrize(("over", "field", "message"), [
    ({"work_minutes": "ten"}, "work_minutes", "must be a number, got str &#39;ten&#39;"),
    ({"work_minutes": "5", "warning_seconds": "400"}, "warning_seconds", "must be shorter than the work period"),
    ({"stations-2-kind": "space"}, "stations-1-kind", "must be one of online, teacher, offline"),
    ({"stations-2-lessons": "../x.html"}, "stations-1-lessons", "must be a cache path"),
    ({"stations-2-name": "Books"}, "stations-1-name", "duplicate name"),
    ({"groups-0-name": "", "groups-0-members": "s-1", "groups-1-name": ""}, "groups-0-name",
     "must be a non-empty string"),
    ({"groups-0-name": "", "groups-0-members": "", "groups-1-name": ""}, "groups", "must not be empty"),
    ({"name": "Math block"}, "name", "a saved plan with this name exists"),
    ({"rounds": "2.5"}, "rounds", "whole number"),
])
def test_plan_form_shows_validation_inline(teacher: FlaskClient, over: dict[str, str], field: str,
                                           message: str) -> None:
    resp = teacher.post("/teacher/plan", data={**plan_form(**over), "csrf_token": page_csrf(teacher)})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    m = re.search(rf'<p class="field-error" id="err-{field}">([^<]*)</p>', page)
    assert m, f"no inline error for {field}"
    assert message in m[1]
    if field not in ("groups",):
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true" aria-describedby="err-{field}"', page)
    assert f'<a href="#{field}">' in page  # the summary links to the field
    assert 'value="Reading"' in page or over.get("name")  # what was typed is kept


def test_edit_and_rename_a_plan(teacher: FlaskClient, rotation: RotationService) -> None:
    page = text(teacher, "/teacher/plan?name=Math+block")
    assert 'value="Math block"' in page and 'name="original" value="Math block"' in page
    assert "district/fractions/intro.html" in page and "s-101 s-102" in page
    form = {"name": "Math block 2", "original": "Math block", "work_minutes": "20", "warning_seconds": "60",
            "transition_seconds": "90", "rounds": "4", "stations-0-name": "Online", "stations-0-kind": "online",
            "stations-0-lessons": "district/fractions/intro.html", "stations-1-name": "Teacher",
            "stations-1-kind": "teacher", "groups-0-name": "A", "groups-1-name": "B"}
    resp = teacher.post("/teacher/plan", data={**form, "csrf_token": page_csrf(teacher)})
    assert resp.status_code == 302
    assert [p.name for p in rotation.plans.plans()] == ["Math block 2"]
    assert rotation.plans.get("Math block 2").work_minutes == 20
    assert teacher.get("/teacher/plan?name=Nope").status_code == 404


def test_delete_a_plan(teacher: FlaskClient, rotation: RotationService) -> None:
    csrf = page_csrf(teacher)
    page = teacher.post("/teacher/plan/delete", data={"name": "Math block", "csrf_token": csrf},
                        follow_redirects=True).get_data(as_text=True)
    assert "Deleted the plan" in page and rotation.plans.plans() == []
    page = teacher.post("/teacher/plan/delete", data={"name": "Math block", "csrf_token": csrf},
                        follow_redirects=True).get_data(as_text=True)
    assert "Cannot delete" in page


def test_periods_form(teacher: FlaskClient, rotation: RotationService) -> None:
    page = text(teacher, "/teacher/periods")
    assert 'name="periods-0-name"' in page and '<option value="Math block">' in page
    form: dict[str, Any] = {"periods-0-name": "Period 3", "periods-0-plan": "Math block", "periods-0-start": "10:15",
            "periods-0-days": ["mon", "thu"], "periods-1-name": "", "periods-1-plan": "", "periods-1-start": "",
            "periods-1-days": ["mon"]}
    resp = teacher.post("/teacher/periods", data={**form, "csrf_token": page_csrf(teacher)})
    assert resp.status_code == 302
    assert PeriodStore(rotation.config.state_dir).periods() == [
        PeriodConfig(name="Period 3", plan="Math block", days=["mon", "thu"], start="10:15")]
    assert "Period 3: Math block at 10:15 on mon, thu" in text(teacher, "/teacher")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"periods-0-start": "7pm"}, "periods-0-start", "24-hour local time"),
        ({"periods-0-days": []}, "periods-0-days", "non-empty list"),
        ({"periods-0-plan": ""}, "periods-0-plan", "missing")]
    for over, field, message in cases:
        resp = teacher.post("/teacher/periods", data={**form, **over, "csrf_token": page_csrf(teacher)})
        assert resp.status_code == 422
        m = re.search(rf'<p class="field-error" id="err-{field}">([^<]*)</p>', resp.get_data(as_text=True))
        assert m and message in m[1], field


def test_saved_periods_start_the_plan_at_the_bell(teacher: FlaskClient, rotation: RotationService,
                                                  clock: FakeClock) -> None:
    now = datetime.fromtimestamp(clock.time())
    start = (now.hour * 60 + now.minute + 2) % (24 * 60)
    hhmm = f"{start // 60:02d}:{start % 60:02d}"
    day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][datetime.fromtimestamp(clock.time() + 120).weekday()]
    PeriodStore(rotation.config.state_dir).save([PeriodConfig(name="P1", plan="Math block", days=[day], start=hhmm)])
    rotation.check_bell()
    assert rotation.engine.snapshot().status == "idle"
    clock.advance(180)
    rotation.check_bell()
    snap = rotation.engine.snapshot()
    assert snap.status == "running" and snap.plan == "Math block"


def test_saved_periods_cache_and_bad_file(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    store = PeriodStore(tmp_path)
    assert saved_periods(tmp_path) == []
    p = PeriodConfig(name="P", plan="X", days=["mon"], start="08:00")
    store.save([p])
    assert saved_periods(tmp_path) == [p]
    store.save([p, PeriodConfig(name="Q", plan="X", days=["tue"], start="09:00")])
    assert len(saved_periods(tmp_path)) == 2
    store.path.write_text('{"version": 1, "periods": [{"name": "P", "plan": "X", "start": "99:00"}]}')
    assert saved_periods(tmp_path) == []
    assert "ignoring the saved period schedule" in caplog.text and "periods[0].start" in caplog.text


def test_form_error_keys_map_to_fields() -> None:
    f = Form(row_of={"stations": [0, 2]})
    assert f.field_for("plan.stations[1].kind") == "stations-2-kind"
    assert f.field_for("plan.stations[1].lessons[3]") == "stations-2-lessons"
    assert f.field_for("plan.groups[0]") == "groups-0-name"
    assert f.field_for("plan.work_minutes") == "work_minutes"
    assert f.field_for("plan.colour") == "form"


def test_html_error_pages_for_pages(teacher: FlaskClient) -> None:
    resp = teacher.get("/teacher/plan?name=Nope")
    assert resp.status_code == 404 and "There is no saved plan called" in resp.get_data(as_text=True)
    assert resp.mimetype == "text/html"


def test_every_engine_action_has_words_and_a_route() -> None:
    from edge.rotation.engine import ACTIONS
    from edge.rotation.web.pages import ACTION_WORDS

    assert ACTION_WORDS.keys() == ACTIONS.keys() and next(iter(ACTIONS)) == "start"
