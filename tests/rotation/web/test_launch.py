"""The student page as the lesson launcher: pick the group, then yourself; lesson links launch with a
credential scoped to you (TinCan or cmi5, as the lesson manifest says)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient

from edge import launch
from edge.config import EdgeConfig
from edge.rotation.plan import Plan
from edge.rotation.service import RotationService
from edge.rotation.web import create_app
from edge.sync.roster import Roster, roster_path
from tests.rotation.web.helpers import PIN, TOKEN

KEY = "class-key-for-launches"
LESSON = "district/fractions/intro.html"


def launching_app(make_config: Any, tmp_path: Path, rotation: RotationService, convention: str | None,
                  key: str = KEY) -> FlaskClient:
    item: dict[str, Any] = {"path": "fractions/intro.html", "activity": "https://lessons.example/frac/intro",
                            "skill": "fractions"}
    if convention:
        item["launch"] = convention
    manifest = tmp_path / "lessons.json"
    manifest.write_text(json.dumps({"origin": "district", "paths": [item]}))
    config: EdgeConfig = make_config(web={"teacher_pin": PIN, "api_token": TOKEN},
                                     cache={"origins": {"district": "https://lessons.example"}},
                                     mastery={"class_key": key, "manifests": [str(manifest)], "port": 8090,
                                              "account_home_page": "https://sis.example.org/students"})
    return create_app(config, rotation).test_client()


def test_the_student_picks_themselves_and_lessons_launch_as_them(
        make_config: Any, tmp_path: Path, rotation: RotationService, math_plan: Plan) -> None:
    client = launching_app(make_config, tmp_path, rotation, None)
    rotation.engine.start(math_plan)
    page = client.get("/?group=A").get_data(as_text=True)
    assert "Who are you?" in page and 'href="/?group=A&amp;student=s-101"' in page
    assert f'href="http://localhost:8080/{LESSON}"' in page  # not launched until the student is known
    page = client.get("/?group=A&student=s-101").get_data(as_text=True)
    assert 'data-student="s-101"' in page and "Lessons open as <strong>s-101</strong>" in page
    href = f"/launch?group=A&amp;student=s-101&amp;lesson={LESSON}"
    assert f'href="{href}"' in page

    resp = client.get(href.replace("&amp;", "&"))
    assert resp.status_code == 302 and resp.headers["Cache-Control"] == "no-store"
    url = urlsplit(resp.headers["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"http://localhost:8080/{LESSON}"
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert set(q) == {"endpoint", "auth", "actor", "registration", "activity_id"}  # the TinCan convention
    assert q["endpoint"] == "http://localhost:8090/xapi/" and q["activity_id"] == "https://lessons.example/frac/intro"
    actor = json.loads(q["actor"])
    assert actor["account"] == {"homePage": "https://sis.example.org/students", "name": "s-101"}
    user, _, token = __import__("base64").b64decode(q["auth"].removeprefix("Basic ")).decode().partition(":")
    claims = launch.verify(KEY, token, time.time(), "auth")
    assert user == launch.TOKEN_USER and claims is not None
    assert (claims.student, claims.registration) == ("s-101", q["registration"])
    assert launch.verify("another-key", token, time.time(), "auth") is None  # the class key signs it
    assert launch.verify(KEY, token, time.time() + 241 * 60, "auth") is None  # mastery.launch_minutes = 240
    # the same student and lesson keep their registration (content resumes its state), another does not
    again = parse_qs(urlsplit(client.get(href.replace("&amp;", "&")).headers["Location"]).query)
    other = parse_qs(urlsplit(client.get("/launch?group=A&student=s-102&lesson=" + LESSON).headers["Location"]).query)
    assert again["registration"] == [q["registration"]] and again["auth"] != [q["auth"]]
    assert other["registration"] != [q["registration"]]


def test_a_cmi5_lesson_gets_a_one_time_fetch_url(make_config: Any, tmp_path: Path, rotation: RotationService,
                                                  math_plan: Plan) -> None:
    client = launching_app(make_config, tmp_path, rotation, "cmi5")
    rotation.engine.start(math_plan)
    resp = client.get(f"/launch?group=A&student=s-102&lesson={LESSON}", headers={"Host": "room12.local:8000"})
    q = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}
    assert set(q) == {"endpoint", "fetch", "actor", "registration", "activityId"}
    assert q["endpoint"] == "http://room12.local:8090/xapi/"
    fetch = urlsplit(q["fetch"])
    assert f"{fetch.scheme}://{fetch.netloc}{fetch.path}" == "http://room12.local:8090/launch/fetch"
    claims = launch.verify(KEY, parse_qs(fetch.query)["token"][0], time.time(), "fetch")
    assert claims is not None and claims.student == "s-102" and claims.activity == q["activityId"]
    assert launch.verify(KEY, parse_qs(fetch.query)["token"][0], time.time(), "auth") is None  # not a credential


def test_launch_refuses_what_the_rotation_does_not_offer(make_config: Any, tmp_path: Path,
                                                         rotation: RotationService, math_plan: Plan) -> None:
    client = launching_app(make_config, tmp_path, rotation, None)
    assert client.get(f"/launch?group=A&student=s-101&lesson={LESSON}").status_code == 404  # nothing running
    rotation.engine.start(math_plan)
    assert client.get(f"/launch?group=A&student=s-999&lesson={LESSON}").status_code == 404
    assert client.get(f"/launch?group=B&student=s-101&lesson={LESSON}").status_code == 404
    assert client.get("/launch?group=A&student=s-101&lesson=district/other.html").status_code == 404
    assert client.get("/launch?group=A&student=s-101&lesson=" + "x" * 600).status_code == 400
    page = client.get("/?group=A&student=s-999").get_data(as_text=True)
    assert 'data-student=""' in page  # not a member: no launch links


def test_no_class_key_or_launch_none_gives_the_plain_lesson(make_config: Any, tmp_path: Path,
                                                            rotation: RotationService, math_plan: Plan) -> None:
    rotation.engine.start(math_plan)
    for client in (launching_app(make_config, tmp_path, rotation, None, key=""),
                   launching_app(make_config, tmp_path, rotation, "none")):
        resp = client.get(f"/launch?group=A&student=s-101&lesson={LESSON}")
        assert resp.status_code == 302 and resp.headers["Location"] == f"http://localhost:8080/{LESSON}"


def test_roster_names_show_on_the_students_own_screen_only(
        make_config: Any, tmp_path: Path, rotation: RotationService, math_plan: Plan) -> None:
    client = launching_app(make_config, tmp_path, rotation, None)
    config = client.application.extensions["classroom_edge"].config
    roster = Roster(users={"s-101": {"role": "student", "enabled": True, "givenName": "Ada", "familyName": "L"}})
    roster_path(config).parent.mkdir(parents=True, exist_ok=True)
    roster_path(config).write_bytes(roster.to_json())
    rotation.engine.start(math_plan)
    page = client.get("/?group=A&student=s-101").get_data(as_text=True)
    assert ">Ada L</a>" in page and "Lessons open as <strong>Ada L</strong>" in page and ">s-102</a>" in page
    assert "Ada" not in client.get("/board").get_data(as_text=True)
    location = client.get(f"/launch?group=A&student=s-101&lesson={LESSON}").headers["Location"]
    assert "Ada" not in location  # the actor carries the pseudonymous id only
