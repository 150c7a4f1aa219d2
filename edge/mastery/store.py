"""Durable evidence store: SQLite in WAL mode with synchronous=FULL, so a commit is fsynced before the ack.

`statements` is the outbox the district sync reads (id, stored_at, body JSON, sent flag); `evidence` holds
the scored responses the mastery model replays. One connection, used from one writer thread only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.mastery.xapi import Evidence

SCHEMA = """
CREATE TABLE IF NOT EXISTS statements (
    id TEXT PRIMARY KEY,
    stored_at TEXT NOT NULL,         -- ISO 8601 UTC, when this unit accepted it
    digest TEXT NOT NULL,            -- sha256 of the statement as sent (a re-send must match it)
    body TEXT NOT NULL,              -- the statement as stored (with id, timestamp, stored, authority, version)
    sent INTEGER NOT NULL DEFAULT 0  -- 1 once the district LRS has it
);
CREATE INDEX IF NOT EXISTS statements_unsent ON statements (stored_at) WHERE sent = 0;
CREATE TABLE IF NOT EXISTS evidence (
    id TEXT PRIMARY KEY,             -- statement id, or the id given to POST /api/v1/evidence
    student TEXT NOT NULL,
    skill TEXT NOT NULL,
    correct INTEGER NOT NULL,
    ts_us INTEGER NOT NULL,          -- response time, microseconds since the epoch
    digest TEXT NOT NULL,
    source TEXT NOT NULL             -- 'xapi' or 'api'
);
CREATE INDEX IF NOT EXISTS evidence_cell ON evidence (student, skill, ts_us, id);
"""


@dataclass
class Item:
    """One thing to store: an xAPI statement (with its evidence, if any) or a compact evidence item."""

    id: str
    digest: str
    body: dict[str, Any] | None  # None for compact evidence
    evidence: Evidence | None


@dataclass
class WriteRequest:
    """All items of one HTTP request: stored together or (on a conflict) not at all."""

    items: Sequence[Item]
    stored_at: str
    conflict: str | None = None  # the id that clashed
    new_evidence: list[Evidence] = field(default_factory=list)


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (savepoints per request inside a group)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # WAL + FULL: the WAL is fsynced at every commit
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def write_group(self, requests: Sequence[WriteRequest]) -> None:
        """Store several requests in ONE transaction (one fsync); each one all-or-nothing via a savepoint."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for req in requests:
                db.execute("SAVEPOINT req")
                new: list[Evidence] = []
                for item in req.items:
                    table = "statements" if item.body is not None else "evidence"
                    row = db.execute(f"SELECT digest FROM {table} WHERE id = ?", (item.id,)).fetchone()
                    if row is not None:
                        if row[0] != item.digest:
                            req.conflict = item.id
                            break
                        continue  # the same thing again: a no-op
                    if item.body is not None:
                        db.execute("INSERT INTO statements (id, stored_at, digest, body) VALUES (?, ?, ?, ?)",
                                   (item.id, req.stored_at, item.digest, json.dumps(item.body)))
                    ev = item.evidence
                    if ev is not None:
                        cur = db.execute(
                            "INSERT OR IGNORE INTO evidence (id, student, skill, correct, ts_us, digest, source)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (ev.id, ev.student, ev.skill, int(ev.correct), ev.ts_us, item.digest,
                             "xapi" if item.body is not None else "api"))
                        if cur.rowcount:
                            new.append(ev)
                if req.conflict is not None:
                    db.execute("ROLLBACK TO req")
                    db.execute("RELEASE req")
                else:
                    db.execute("RELEASE req")
                    req.new_evidence = new
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            for req in requests:
                req.new_evidence = []
            raise

    def statement(self, statement_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM statements WHERE id = ?", (statement_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def history(self, student: str, skill: str) -> list[tuple[bool, int, str]]:
        rows = self.db.execute(
            "SELECT correct, ts_us, id FROM evidence WHERE student = ? AND skill = ? ORDER BY ts_us, id",
            (student, skill)).fetchall()
        return [(bool(c), int(t), str(i)) for c, t, i in rows]

    def all_evidence(self) -> list[tuple[str, str, bool, int, str]]:
        rows = self.db.execute(
            "SELECT student, skill, correct, ts_us, id FROM evidence ORDER BY student, skill, ts_us, id")
        return [(str(s), str(k), bool(c), int(t), str(i)) for s, k, c, t, i in rows]

    def count(self, table: str) -> int:
        assert table in ("statements", "evidence")
        return int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
