"""Hostile input against the mastery service (issue 11): every refusal is a 4xx in the one JSON error shape that
names the body or field, stores nothing, and leaves the service taking good evidence afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from edge.config import EdgeConfig, parse_config
from edge.limits import JSON_DEPTH_MAX, SKILL_MAX, STUDENT_ID_MAX
from edge.mastery.model import band
from edge.sync.roster import Roster, roster_path
from tests.mastery.test_service import AUTH, KEY, XAPI, serve, statement

GOOD = {"id": "good-1", "student": "s-1", "skill": "fractions", "correct": True, "timestamp": 1714557600}


def config_for(tmp_path: Path) -> EdgeConfig:
    """The default BKT parameters and bands, as a unit ships."""
    return parse_config({"unit": {"state_dir": str(tmp_path)}, "mastery": {"class_key": KEY}})


async def assert_refused(c: TestClient[Any, Any], path: str, body: bytes | str, key: str, status: int = 400,
                         headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = await c.post(path, data=body, headers={**(headers or AUTH), "Content-Type": "application/json"})
    assert r.status == status, await r.text()
    doc = await r.json()
    assert doc["status"] == status and doc["key"] == key, doc
    return doc


async def assert_still_works(c: TestClient[Any, Any], n: int) -> None:
    """A good item is stored after the refusals, and it is the only thing the refusals left behind."""
    r = await c.post("/api/v1/evidence", json=[{**GOOD, "id": f"good-{n}"}], headers=AUTH)
    assert r.status == 200, await r.text()
    r = await c.get("/api/v1/mastery/students/s-1", headers=AUTH)
    assert r.status == 200
    assert (await r.json())["skills"][0]["responses"] == n


def test_json_nested_too_deep_or_with_huge_numbers_is_a_400_naming_the_body(tmp_path: Path) -> None:
    deep_array = "[" * 1500 + "]" * 1500
    just_over = json.dumps([GOOD]).replace("[", "[" * (JSON_DEPTH_MAX + 1), 1).replace("]", "]" * (JSON_DEPTH_MAX + 1))
    deep_object = '{"a":' * 1200 + "1" + "}" * 1200
    huge_int = '[{"id": "x", "student": "s", "skill": "k", "correct": 1, "timestamp": ' + "9" * 5000 + "}]"

    async def body(c: TestClient[Any, Any]) -> None:
        for raw in (deep_array, just_over, deep_object, huge_int, "[NaN]", '{"a": Infinity}'):
            for path, headers in (("/api/v1/evidence", AUTH), ("/xapi/statements", XAPI)):
                doc = await assert_refused(c, path, raw, "body", headers=headers)
                assert "JSON" in doc["error"], doc
        # a state document and an agent parameter take JSON too
        r = await c.put("/xapi/activities/state?activityId=https://a.example/1&stateId=s&agent="
                        + json.dumps({"mbox": "mailto:a@example.org"}), data=deep_object,
                        headers={**XAPI, "Content-Type": "application/json"})
        assert r.status in (204, 400)  # an opaque document may nest; JSON merge (POST) may not
        r = await c.post("/xapi/activities/state?activityId=https://a.example/1&stateId=t&agent="
                         + json.dumps({"mbox": "mailto:a@example.org"}), data=deep_object,
                         headers={**XAPI, "Content-Type": "application/json"})
        assert r.status == 400, await r.text()
        r = await c.get("/xapi/activities/state", params={"activityId": "https://a.example/1",
                                                         "agent": '{"a":' * 100 + "1" + "}" * 100},
                        headers=XAPI)
        assert r.status == 400 and (await r.json())["key"] == "agent"
        await assert_still_works(c, 1)

    serve(config_for(tmp_path), body)


def test_ids_and_skills_have_limits_and_nothing_of_a_refused_request_is_stored(tmp_path: Path) -> None:
    cases = [
        ({**GOOD, "student": "s" * (STUDENT_ID_MAX + 1)}, "[1].student"),
        ({**GOOD, "student": "s-\n2"}, "[1].student"),
        ({**GOOD, "student": "s-\u202e2"}, "[1].student"),
        ({**GOOD, "student": "\x00"}, "[1].student"),
        ({**GOOD, "skill": "k" * (SKILL_MAX + 1)}, "[1].skill"),
        ({**GOOD, "skill": "x" * 100_000}, "[1].skill"),
        ({**GOOD, "id": "i" * 1000}, "[1].id"),
        ({**GOOD, "timestamp": 10**20}, "[1].timestamp"),
        ({**GOOD, "timestamp": "0001-01-01T00:00:00Z"}, "[1].timestamp"),
        ({**GOOD, "correct": 2}, "[1].correct"),
    ]

    async def body(c: TestClient[Any, Any]) -> None:
        for i, (item, key) in enumerate(cases):
            # a good item first: the whole request is refused, the good one is not stored either
            await assert_refused(c, "/api/v1/evidence", json.dumps([{**GOOD, "id": f"x-{i}"}, item]), key)
        r = await c.get("/api/v1/mastery/students/s-1", headers=AUTH)
        assert r.status == 404  # nothing was stored
        r = await c.get("/api/v1/mastery", params={"skill": "k" * (SKILL_MAX + 1)}, headers=AUTH)
        assert r.status == 400 and (await r.json())["key"] == "skill"
        r = await c.get("/api/v1/mastery/students/" + "s" * (STUDENT_ID_MAX + 1), headers=AUTH)
        assert r.status == 400 and (await r.json())["key"] == "student"
        # 1.0 is 1 (JSON Schema agrees): accepted
        r = await c.post("/api/v1/evidence", json=[{**GOOD, "id": "float-one", "correct": 1.0}], headers=AUTH)
        assert r.status == 200
        await assert_still_works(c, 2)

    serve(config_for(tmp_path), body)


def test_an_xapi_statement_with_an_over_long_account_is_stored_but_not_evidence(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        junk = statement("j" * 1000, "fractions", True, "2024-05-01T10:00:00Z")
        r = await c.post("/xapi/statements", json=junk, headers=XAPI)
        assert r.status == 200  # valid xAPI: the LRS keeps it (and forwards it)
        r = await c.post("/xapi/statements", json=statement("s-1", "fractions", True, "2024-05-01T10:00:01Z"),
                         headers=XAPI)
        assert r.status == 200
        r = await c.get("/api/v1/mastery", params={"skill": "fractions"}, headers=AUTH)
        assert [s["student"] for s in (await r.json())["students"]] == ["s-1"]

    serve(config_for(tmp_path), body)


def test_a_skill_report_lists_students_with_evidence_on_it_and_the_roster(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    roster = Roster(users={"r-1": {"role": "student", "enabled": True}, "r-2": {"role": "student", "enabled": False},
                           "t-1": {"role": "teacher", "enabled": True}})
    roster_path(config).parent.mkdir(parents=True, exist_ok=True)
    roster_path(config).write_bytes(roster.to_json())

    async def body(c: TestClient[Any, Any]) -> None:
        items = [{**GOOD, "id": "a", "student": "s-1", "skill": "fractions"},
                 {**GOOD, "id": "b", "student": "junk", "skill": "decimals"}]
        assert (await c.post("/api/v1/evidence", json=items, headers=AUTH)).status == 200
        r = await c.get("/api/v1/mastery", params={"skill": "fractions"}, headers=AUTH)
        students = {s["student"]: s for s in (await r.json())["students"]}
        assert sorted(students) == ["r-1", "s-1"]  # not "junk" (only decimals), not the disabled or the teacher
        assert students["r-1"]["responses"] == 0 and students["r-1"]["p_known"] == pytest.approx(0.2)

    serve(config, body)


def test_bands_agree_with_the_readme_at_their_boundaries(tmp_path: Path) -> None:
    bands = [0.6, 0.95]
    assert band(0.6, bands) == "practising" and band(0.5999999999999999, bands) == "practising"
    assert band(0.95, bands) == "mastered" and band(0.9499999999999999, bands) == "mastered"
    assert band(0.5999, bands) == "needs_help" and band(0.9499, bands) == "practising"

    async def body(c: TestClient[Any, Any]) -> None:
        # one correct answer from the default prior 0.2: P(known) = 0.6 in exact arithmetic
        assert (await c.post("/api/v1/evidence", json=[GOOD], headers=AUTH)).status == 200
        r = await c.get("/api/v1/mastery", params={"skill": "fractions"}, headers=AUTH)
        (cell,) = (await r.json())["students"]
        assert cell["p_known"] == pytest.approx(0.6) and cell["band"] == "practising"

    serve(config_for(tmp_path), body)


def test_405_names_the_allowed_methods(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.delete("/api/v1/evidence", headers=AUTH)
        assert r.status == 405 and "POST" in r.headers["Allow"]
        assert (await r.json())["status"] == 405
        r = await c.patch("/xapi/statements", headers=XAPI)
        assert r.status == 405 and "PUT" in r.headers["Allow"]

    serve(config_for(tmp_path), body)
