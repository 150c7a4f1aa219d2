"""The history of applied groupings: SQLite store (WAL, synchronous=FULL) and mastery change since the last."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.rotation.groups.history import applied, mastery_change
from edge.rotation.groups.history_store import GroupingHistory
from edge.rotation.groups.model import Options, StudentScore
from edge.rotation.groups.propose import propose, revise
from edge.rotation.plan import Group, Plan, Station

PLAN = Plan(name="Block", work_minutes=15, groups=(Group("A"), Group("B"), Group("C")),
            stations=(Station("Online", "online"), Station("Teacher", "teacher"), Station("Practice", "offline")))
SCORES = {f"s{i}": StudentScore(p, 5) for i, p in enumerate([0.1, 0.15, 0.2, 0.5, 0.55, 0.6, 0.85, 0.9, 0.95])}


def test_record_and_read_back_with_teacher_changes(tmp_path: Path) -> None:
    proposal = propose("frac", SCORES, plan=PLAN, options=Options(groups=3, min_size=2, max_size=4))
    groups = [(g.name, list(g.students)) for g in proposal.groups]
    groups[0][1].remove(student := groups[0][1][0])
    groups[2][1].append(student)
    final = revise(proposal, groups, PLAN)
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    rec = applied(proposal, final, at=at, plan="Block")
    assert rec.applied_at == "2026-03-02T09:30:00Z"
    assert [(c.student, c.source, c.target) for c in rec.changes] == [(student, groups[0][0], groups[2][0])]
    with GroupingHistory(tmp_path / "h.sqlite3") as h:
        first = h.record(rec)
        second = h.record(applied(proposal, at=at, plan="Block"))
        other = h.record(applied(propose("dec", SCORES, options=Options(groups=3, min_size=2, max_size=4)), at=at))
        assert first < second < other
        back = h.latest("frac")
        assert back is not None and back.id == second and back.changes == ()
        listed = h.list("frac")
        assert [r.id for r in listed] == [second, first]
        assert listed[1].changes == rec.changes and listed[1].groups == rec.groups
        assert listed[1].teacher_group == final.teacher_group
        newest = h.latest()
        assert newest is not None and newest.id == other
        assert h.latest("nothing") is None


def test_store_is_wal_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "groups" / "history.sqlite3"
    with GroupingHistory(path) as h:
        assert h.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert h.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        h.record(applied(propose("frac", SCORES, plan=PLAN, options=Options(min_size=2, max_size=4))))
    # committed: another connection sees it
    assert sqlite3.connect(path).execute("SELECT count(*) FROM groupings").fetchone()[0] == 1


def test_mastery_change_since_the_last_grouping() -> None:
    proposal = propose("frac", SCORES, plan=PLAN, options=Options(groups=3, min_size=2, max_size=4))
    rec = applied(proposal)
    teacher = proposal.teacher_group
    assert teacher is not None
    low = next(g for g in proposal.groups if g.name == teacher)
    now = dict(SCORES)
    for s in low.students:  # the teacher-table group gained 0.3 each
        now[s] = StudentScore((SCORES[s].p_known or 0) + 0.3, 9)
    gone = next(s for g in proposal.groups if g.name != teacher for s in g.students)
    del now[gone]  # a student with no score now is left out, not counted as zero
    change = {c.name: c for c in mastery_change(rec, now)}
    assert change[teacher].teacher_table and change[teacher].change == pytest.approx(0.3)
    assert change[teacher].compared == len(low.students)
    others = [c for c in change.values() if not c.teacher_table]
    assert all(c.change == pytest.approx(0.0) for c in others)
    assert sum(c.compared for c in others) == len(SCORES) - len(low.students) - 1
    assert [c.name for c in mastery_change(rec, now)] == [g.name for g in proposal.groups]
