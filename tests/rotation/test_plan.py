"""Plan parsing, validation messages and the timeline (the preview format other tools rely on)."""

from __future__ import annotations

import itertools
import tomllib

import pytest

from edge.exc import PlanError
from edge.rotation.plan import parse_plan
from tests.rotation.plans import PLAN_TOML, make_plan


def test_assignment_rule_round_r_group_i_at_station_i_plus_r_minus_1() -> None:
    plan = make_plan(stations=4, groups=3)
    assert plan.assignments(1) == {"A": "S0", "B": "S1", "C": "S2"}
    assert plan.assignments(2) == {"A": "S1", "B": "S2", "C": "S3"}
    assert plan.assignments(4) == {"A": "S3", "B": "S0", "C": "S1"}


def test_timeline_segments_and_total_length() -> None:
    plan = parse_plan(tomllib.loads(PLAN_TOML), "plan.toml")
    segs = [s.as_json() for s in plan.timeline()]
    assert segs[:4] == [
        {"round": 1, "phase": "work", "start_s": 0, "end_s": 840, "assignments": {"A": "Online", "B": "Teacher",
                                                                              "C": "Practice"}},
        {"round": 1, "phase": "warning", "start_s": 840, "end_s": 900, "assignments": {"A": "Online",
                                                                                    "B": "Teacher",
                                                                                    "C": "Practice"}},
        {"round": 2, "phase": "transition", "start_s": 900, "end_s": 990, "assignments": {"A": "Teacher",
                                                                                       "B": "Practice",
                                                                                       "C": "Games"}},
        {"round": 2, "phase": "work", "start_s": 990, "end_s": 1830, "assignments": {"A": "Teacher",
                                                                                  "B": "Practice", "C": "Games"}},
    ]
    assert len(segs) == 4 * 2 + 3
    assert segs[-1]["end_s"] == 4 * 900 + 3 * 90 == plan.total_s
    # contiguous, in time order
    for a, b in itertools.pairwise(segs):
        assert a["end_s"] == b["start_s"]


def test_default_rounds_is_number_of_stations_and_zero_phases_are_left_out() -> None:
    plan = make_plan(stations=3, warning=0, transition=0)
    assert plan.round_count == 3
    assert [s.phase for s in plan.timeline()] == ["work", "work", "work"]


@pytest.mark.parametrize(
    ("patch", "key", "reason"),
    [
        ({"work_minutes": -5}, "plan.work_minutes", "must be greater than 0"),
        ({"work_minutes": "ten"}, "plan.work_minutes", "must be a number"),
        ({"warning_seconds": 900}, "plan.warning_seconds", "must be shorter than the work period"),
        ({"transition_seconds": -1}, "plan.transition_seconds", "must not be negative"),
        ({"rounds": 0}, "plan.rounds", "at least 1"),
        ({"rounds": 2.5}, "plan.rounds", "whole number"),
        ({"stations": []}, "plan.stations", "must not be empty"),
        ({"groups": []}, "plan.groups", "must not be empty"),
        ({"colour": "red"}, "plan.colour", "unknown key"),
        ({"stations": [{"name": "X", "kind": "lab"}]}, "plan.stations[0].kind", "must be one of"),
        ({"stations": [{"name": "X", "kind": "online"}, {"name": "X", "kind": "teacher"}]},
         "plan.stations[1].name", "duplicate"),
        ({"stations": [{"name": "X", "kind": "online", "lessons": ["../etc/passwd"]}]},
         "plan.stations[0].lessons[0]", "cache path"),
        ({"groups": [{"name": "A", "members": [101]}]}, "plan.groups[0].members", "list of non-empty strings"),
        ({"name": ""}, "plan.name", "non-empty"),
    ],
)
def test_invalid_plans_name_file_key_and_reason(patch: dict[str, object], key: str, reason: str) -> None:
    doc = tomllib.loads(PLAN_TOML)
    doc["plan"].update(patch)
    with pytest.raises(PlanError) as err:
        parse_plan(doc, "math.toml")
    assert err.value.file == "math.toml"
    assert err.value.key == key
    assert reason in err.value.reason
    assert str(err.value).startswith(f"math.toml: {key}: ")


def test_missing_required_keys() -> None:
    with pytest.raises(PlanError, match=r"plan\.work_minutes: missing"):
        parse_plan({"plan": {"name": "x", "stations": [], "groups": []}}, "p.toml")
    with pytest.raises(PlanError, match=r"p.toml: plan: missing \[plan\] table"):
        parse_plan({}, "p.toml")


def test_to_toml_round_trips() -> None:
    plan = parse_plan(tomllib.loads(PLAN_TOML), "plan.toml")
    assert parse_plan(plan.to_toml(), "again") == plan


def test_a_whole_number_written_with_a_point_is_a_whole_number() -> None:
    """JSON (and the OpenAPI schema's "integer") do not tell 27 from 27.0: a client sending 27.0 rounds means 27
    (the fuzzer found the API refusing it); 2.5, true and 1e400 stay refused."""
    doc = tomllib.loads(PLAN_TOML)
    doc["plan"]["rounds"] = 3.0
    assert parse_plan(doc, "plan.toml").rounds == 3
    for bad in (2.5, True, float("inf")):
        doc["plan"]["rounds"] = bad
        with pytest.raises(PlanError, match=r"plan\.rounds"):
            parse_plan(doc, "plan.toml")
