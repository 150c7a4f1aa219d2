"""`edge groups ...` as teachers run it: from a CSV, from the unit's mastery store (read-only replay with the
BKT kernel), the roster and saved plans; apply and history; errors as `edge: error: ...` with exit 1."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import edge.cli
from edge.config import load_config
from edge.fsutil import atomic_write
from edge.mastery.replay import Event, replay
from edge.mastery.store import Store
from edge.params import ParamSet, SkillParams
from edge.rotation.groups.model import Options, StudentScore
from edge.rotation.groups.propose import propose
from edge.rotation.plan import Group, Plan, Station
from edge.rotation.store import PlanStore
from edge.sync.roster import Roster, roster_path

CSV = "student,skill,p_known,n\n" + "".join(
    f"s{i:02d},frac,{p},{n}\n" for i, (p, n) in enumerate(
        [(0.1, 5), (0.12, 5), (0.15, 6), (0.4, 4), (0.45, 7), (0.5, 3), (0.8, 9), (0.85, 5), (0.9, 8), (0.3, 1)]))
CSV += "s00,dec,0.5,4\n"


@pytest.fixture(autouse=True)
def only_groups_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate from sub-commands other packages are still building."""
    monkeypatch.setattr(edge.cli, "REGISTRARS", ("edge.rotation.groups.cli",))


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[unit]\nstate_dir = "{tmp_path / "state"}"\n'
                   '[mastery.params.default]\nprior = 0.3\nlearn = 0.2\nguess = 0.2\nslip = 0.1\n')
    return cfg


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = edge.cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_propose_from_csv_json(tmp_path: Path, unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.csv").write_text(CSV)
    code, out, err = run(capsys, "--config", str(unit), "groups", "propose", "--skill", "frac", "--groups", "3",
                         "--min-size", "3", "--max-size", "4", "--mastery", str(tmp_path / "m.csv"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["skill"] == "frac" and doc["mode"] == "homogeneous" and doc["thin"] == ["s09"]
    lowest = min(doc["groups"], key=lambda g: g["mean_p_known"])
    assert {"s00", "s01", "s02"} <= set(lowest["students"])
    assert all(3 <= len(g["students"]) <= 4 and g["first_station"] is None for g in doc["groups"])
    expected = propose("frac", {f"s{i:02d}": StudentScore(p, n) for i, (p, n) in enumerate(
        [(0.1, 5), (0.12, 5), (0.15, 6), (0.4, 4), (0.45, 7), (0.5, 3), (0.8, 9), (0.85, 5), (0.9, 8), (0.3, 1)])},
        options=Options(groups=3, min_size=3, max_size=4))
    assert doc == json.loads(json.dumps(expected.to_json()))


def test_propose_table_and_constraints(tmp_path: Path, unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.csv").write_text(CSV)
    code, out, err = run(capsys, "--config", str(unit), "groups", "propose", "--skill", "frac", "--groups", "3",
                         "--mastery", str(tmp_path / "m.csv"), "--pin", "s00=Blue", "--apart", "s01,s02",
                         "--absent", "s08", "--mode", "mixed", "--margin", "0", "--min-evidence", "2")
    assert code == 0, err
    assert "Proposal for skill 'frac' (mixed): 3 groups" in out
    rows = {line.split()[0]: line for line in out.splitlines()[2:5]}
    assert "s00" in rows["Blue"] and "s08" not in out.split("absent:")[0]
    assert not any("s01" in r and "s02" in r for r in rows.values())
    assert "absent: s08" in out and "thin evidence" in out and "s09?" in out


@pytest.mark.parametrize(("args", "message"), [
    (("--skill", "nope", "--groups", "3"), "unknown skill 'nope' (known: dec, frac)"),
    (("--skill", "frac", "--groups", "11"), "11 groups is more than the 10 students present"),
    (("--skill", "frac", "--groups", "2", "--max-size", "4"), "10 students cannot make 2 groups of 3 to 4"),
    (("--skill", "frac", "--groups", "3", "--min-size", "5", "--max-size", "4"), "min_size 5 is larger"),
    (("--skill", "frac", "--groups", "three"), "--groups must be a whole number, got 'three'"),
    (("--skill", "frac", "--groups", "41"), "groups must be a whole number in [1, 40]"),
    (("--skill", "frac", "--groups", "3", "--margin", "x"), "--margin must be a number"),
    (("--skill", "frac", "--groups", "3", "--mode", "fun"), "--mode must be one of homogeneous, mixed"),
    (("--skill", "frac", "--groups", "3", "--pin", "s00"), "--pin wants STUDENT=GROUP"),
    (("--skill", "frac", "--groups", "3", "--apart", "s00"), "--apart wants A,B"),
    (("--skill", "frac", "--groups", "3", "--pin", "zz=A"), "pinned student 'zz' is not in the class"),
    (("--skill", "frac"), "give the number of groups"),
    (("--skill", "x" * 201, "--groups", "3"), "at most 200 characters"),
])
def test_bad_input_is_an_error(tmp_path: Path, unit: Path, capsys: pytest.CaptureFixture[str],
                               args: tuple[str, ...], message: str) -> None:
    (tmp_path / "m.csv").write_text(CSV)
    code, out, err = run(capsys, "--config", str(unit), "groups", "propose", "--mastery", str(tmp_path / "m.csv"),
                         *args)
    assert code == 1 and out == ""
    assert err.startswith("edge: error: ") and message in err, err


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty file"),
    ("student,skill,p\n", "missing column 'p_known'"),
    ("student,skill,p_known,n\ns1,frac,0.5\n", "line 2: has 3 fields, the header has 4"),
    ("student,skill,p_known,n\ns1,frac,1.5,3\n", "line 2: p_known must be a number in [0, 1], got '1.5'"),
    ("student,skill,p_known,n\ns1,frac,nan,3\n", "line 2: p_known must be a number in [0, 1]"),
    ("student,skill,p_known,n\ns1,frac,0.5,-1\n", "line 2: n must be a whole number"),
    ("student,skill,p_known,n\ns1,frac,0.5,3\ns1,frac,0.6,3\n", "line 3: 's1' has a second row for skill 'frac'"),
    ("student,skill,p_known,n\n,frac,0.5,3\n", "line 2: student must be a non-empty string"),
    ("student,skill,p_known,n\ns\x01,frac,0.5,3\n", "line 2: student must not contain control or text-direction"),
    ("student,skill,p_known,n\ns1,frac,0.5," + "3" * 200_000 + "\n", "line 2: bad CSV: field larger than field limit"),
])
def test_malformed_csv_names_the_line(tmp_path: Path, unit: Path, capsys: pytest.CaptureFixture[str], text: str,
                                      message: str) -> None:
    (tmp_path / "m.csv").write_text(text)
    code, _, err = run(capsys, "--config", str(unit), "groups", "propose", "--skill", "frac", "--groups", "1",
                       "--mastery", str(tmp_path / "m.csv"))
    assert code == 1 and message in err and str(tmp_path / "m.csv") in err, err


def _evidence(config_path: Path, rows: list[tuple[str, str, bool, int]]) -> None:
    config = load_config(config_path)
    store = Store(config.state_dir / "mastery" / "mastery.sqlite3")
    try:
        store.db.executemany("INSERT INTO evidence (id, student, skill, correct, ts_us, digest, source)"
                             " VALUES (?, ?, ?, ?, ?, 'd', 'api')",
                             [(f"e{i}", s, k, int(c), t) for i, (s, k, c, t) in enumerate(rows)])
    finally:
        store.close()


def _class_evidence() -> list[tuple[str, str, bool, int]]:
    rows = []
    pattern = {"a": "1111", "b": "1101", "c": "0000", "d": "0010", "e": "1110", "f": "0100", "g": "11"}
    for student, answers in pattern.items():
        for j, ch in enumerate(answers):
            rows.append((student, "frac", ch == "1", 1_000_000 * (10 - j)))  # stored out of time order
    rows.append(("h", "dec", True, 5))
    return rows


def test_propose_from_the_store_replays_with_the_configured_params(unit: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rows = _class_evidence()
    _evidence(unit, rows)
    code, out, err = run(capsys, "--config", str(unit), "groups", "propose", "--skill", "frac", "--groups", "2",
                         "--json")
    assert code == 0, err
    doc = json.loads(out)
    params = ParamSet(default=SkillParams(prior=0.3, learn=0.2, guess=0.2, slip=0.1))
    replayed = replay([Event(f"e{i}", s, k, c, Decimal(t)) for i, (s, k, c, t) in
                       enumerate(rows) if k == "frac"], params)
    last = {r.student: r.p_known_after for r in replayed}
    for student, p in last.items():
        assert doc["scores"][student]["p_known"] == pytest.approx(p, abs=1e-11)
    assert doc["scores"]["a"]["n"] == 4 and doc["scores"]["g"]["n"] == 2
    # "h" has evidence on another skill only: in the class, at the prior, thin
    assert doc["scores"]["h"] == {"p_known": 0.3, "n": 0} and set(doc["thin"]) == {"g", "h"}


def test_store_is_opened_read_only(unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _evidence(unit, _class_evidence())
    db = load_config(unit).state_dir / "mastery" / "mastery.sqlite3"
    before = db.stat().st_mtime_ns
    code, _, err = run(capsys, "--config", str(unit), "groups", "propose", "--skill", "frac", "--groups", "2")
    assert code == 0, err
    assert db.stat().st_mtime_ns == before
    assert sqlite3.connect(db).execute("SELECT count(*) FROM evidence").fetchone()[0] == len(_class_evidence())


def test_unknown_skill_in_the_store(unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _evidence(unit, _class_evidence())
    code, _, err = run(capsys, "--config", str(unit), "groups", "propose", "--skill", "geo", "--groups", "2")
    assert code == 1 and "unknown skill 'geo' (skills with evidence: dec, frac)" in err


def _roster(unit: Path, classes: dict[str, list[str]]) -> None:
    config = load_config(unit)
    users: dict[str, dict[str, Any]] = {s: {"role": "student", "enabled": True, "orgs": ["sch"]}
                                        for members in classes.values() for s in members}
    enrollments = {f"{c}-{s}": {"class": c, "school": "sch", "user": s, "role": "student"}
                   for c, members in classes.items() for s in members}
    roster = Roster(orgs={"sch": {"name": "School", "type": "school", "parent": "", "identifier": ""}},
                    classes={c: {"title": c, "school": "sch", "classCode": ""} for c in classes},
                    users=users, enrollments=enrollments)
    atomic_write(roster_path(config), roster.to_json())


def test_roster_class_and_saved_plan(unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _evidence(unit, _class_evidence())
    # the roster's class has a student with no evidence yet (x) and not "h"
    _roster(unit, {"c1": ["a", "b", "c", "d", "e", "f", "g", "x"], "c2": ["h", "y"]})
    plan = Plan(name="Math block", work_minutes=15,
                stations=(Station("Online", "online"), Station("Teacher", "teacher")),
                groups=(Group("Red", ("a", "b", "e", "g")), Group("Green", ("c", "d", "f", "x"))))
    PlanStore(load_config(unit).plans_dir).save(plan)
    code, out, err = run(capsys, "--config", str(unit), "groups", "propose", "--skill", "frac", "--plan",
                         "Math block", "--min-size", "2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    names = {g["name"]: g for g in doc["groups"]}
    assert set(names) == {"Red", "Green"}  # G from the plan's two stations, names from its groups
    members = sorted(s for g in doc["groups"] for s in g["students"])
    assert members == ["a", "b", "c", "d", "e", "f", "g", "x"]  # c1 picked by overlap with the plan
    low = min(doc["groups"], key=lambda g: g["mean_p_known"])
    assert low["first_station"] == "Teacher" and doc["teacher_group"] == low["name"]
    assert "x" in doc["thin"] and "g" in doc["thin"]
    code, _, err = run(capsys, "--config", str(unit), "groups", "propose", "--skill", "frac", "--class", "c9",
                       "--groups", "2", "--min-size", "2")
    assert code == 1 and "class 'c9' is not in the roster" in err


def test_apply_writes_the_saved_plan_and_history(unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _evidence(unit, _class_evidence())
    plan = Plan(name="Math block", work_minutes=15,
                stations=(Station("Teacher", "teacher"), Station("Online", "online")),
                groups=(Group("Red", ("a", "b", "e", "g")), Group("Green", ("c", "d", "f", "h"))))
    store = PlanStore(load_config(unit).plans_dir)
    store.save(plan)
    code, out, err = run(capsys, "--config", str(unit), "groups", "apply", "--skill", "frac", "--plan", "Math block",
                         "--min-size", "2")
    assert code == 0, err
    assert "applied to saved plan 'Math block' (grouping #1)" in out
    saved = store.get("Math block")
    assert saved.stations == plan.stations
    code, out, err = run(capsys, "--config", str(unit), "groups", "history", "--json")
    assert code == 0, err
    doc = json.loads(out)
    (rec,) = doc["groupings"]
    assert rec["plan"] == "Math block" and rec["skill"] == "frac" and rec["changes"] == []
    teacher = rec["teacher_group"]
    assert saved.assignments(1)[teacher] == "Teacher"
    assert {g["name"]: tuple(g["students"]) for g in rec["groups"]} == {g.name: g.members for g in saved.groups}
    assert [c["change"] for c in doc["change_since_last"]] == [0.0, 0.0]  # no new evidence since
    code, out, _ = run(capsys, "--config", str(unit), "groups", "history")
    assert code == 0 and "#1 " in out and "(teacher table first)" in out


def test_history_when_empty(unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--config", str(unit), "groups", "history")
    assert code == 0 and out == "no applied groupings yet\n"


def test_focus_skill_from_the_online_station_lessons(tmp_path: Path, unit: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "fractions.json"
    manifest.write_text(json.dumps({"origin": "district", "paths": [
        {"path": "quiz/f1.html", "activity": "https://district.example/act/f1", "skill": "frac"},
        {"path": "quiz/d1.html", "activity": "https://district.example/act/d1", "skill": "dec"}]}))
    unit.write_text(unit.read_text() + f'[cache.origins]\ndistrict = "https://lessons.district.example"\n'
                    f'[mastery]\nmanifests = ["{manifest}"]\n')
    _evidence(unit, _class_evidence())
    plan = Plan(name="Block", work_minutes=15, groups=(Group("Red"), Group("Green")),
                stations=(Station("Online", "online", ("district/quiz/f1.html",)), Station("Teacher", "teacher")))
    store = PlanStore(load_config(unit).plans_dir)
    store.save(plan)
    code, out, err = run(capsys, "--config", str(unit), "groups", "propose", "--plan", "Block", "--min-size", "2",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["skill"] == "frac"
    store.save(Plan(name="Block", work_minutes=15, groups=plan.groups, stations=(
        Station("Online", "online", ("district/quiz/f1.html", "district/quiz/d1.html")), Station("T", "teacher"))))
    code, _, err = run(capsys, "--config", str(unit), "groups", "propose", "--plan", "Block", "--min-size", "2")
    assert code == 1 and "give --skill: the online lessons of plan 'Block' cover dec, frac" in err
