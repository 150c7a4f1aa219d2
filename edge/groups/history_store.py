"""History of applied groupings on disk: SQLite in WAL mode with synchronous=FULL, so an apply the teacher saw
succeed survives a power cut. One row per applied grouping; groups and changes as JSON text.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from edge.groups.history import AppliedGrouping, from_row

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


class GroupingHistory:
    """Append and read applied groupings. One connection; use from one thread (or open one per thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # WAL + FULL: each commit is fsynced before record() returns
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> GroupingHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, grouping: AppliedGrouping) -> int:
        """Store `grouping`; returns its id."""
        doc = grouping.to_json()
        with self.db:  # sqlite3's context manager commits (or rolls back) the transaction
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(
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
