"""History of applied groupings on disk: SQLite in WAL mode with synchronous=FULL, so an apply the teacher saw
succeed survives a power cut. One row per applied grouping; groups and changes as JSON text.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge.db import connect, transaction
from edge.resource import Resource
from edge.rotation.groups.history import AppliedGrouping, from_row

SCHEMA = """
CREATE TABLE IF NOT EXISTS groupings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    applied_at TEXT NOT NULL,        -- ISO 8601 UTC
    skill TEXT NOT NULL,
    mode TEXT NOT NULL,
    plan TEXT,                       -- the plan the groups went into
    teacher_group TEXT,              -- the group at the teacher station first
    groups TEXT NOT NULL,            -- JSON: [{name, students, p_known: {student: p}, mean_p_known, first_station}]
    changes TEXT NOT NULL            -- JSON: the teacher's edits [{student, from, to}]
);
CREATE INDEX IF NOT EXISTS groupings_skill ON groupings (skill, id);
"""
_COLUMNS = "id, applied_at, skill, mode, plan, teacher_group, groups, changes"


def history_path(state_dir: Path) -> Path:
    return state_dir / "groups" / "history.sqlite3"


class GroupingHistory(Resource):
    """Append and read applied groupings. One connection; use from one thread (or open one per thread)."""

    def __init__(self, path: Path) -> None:
        self.db = connect(path)  # WAL + synchronous=FULL: each commit is fsynced before record() returns
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def record(self, grouping: AppliedGrouping) -> int:
        """Store `grouping`; returns its id."""
        doc = grouping.to_json()
        with transaction(self.db) as db:
            cur = db.execute(
                "INSERT INTO groupings (applied_at, skill, mode, plan, teacher_group, groups, changes)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (grouping.applied_at, grouping.skill, grouping.mode, grouping.plan, grouping.teacher_group,
                 json.dumps(doc["groups"], sort_keys=True), json.dumps(doc["changes"], sort_keys=True)))
        return int(cur.lastrowid or 0)

    def latest(self, skill: str | None = None) -> AppliedGrouping | None:
        """The most recent applied grouping (of `skill`, if given)."""
        rows = self.list(skill, limit=1)
        return rows[0] if rows else None

    def list(self, skill: str | None = None, limit: int = 50) -> list[AppliedGrouping]:
        """Applied groupings, newest first."""
        where, args = ("WHERE skill = ?", (skill,)) if skill is not None else ("", ())
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM groupings {where} ORDER BY id DESC LIMIT ?",
                               (*args, max(0, limit))).fetchall()
        out = []
        for r in rows:
            doc = dict(zip(_COLUMNS.split(", "), r, strict=True))
            doc["groups"] = json.loads(doc["groups"])
            doc["changes"] = json.loads(doc["changes"])
            out.append(from_row(doc))
        return out
