"""Durable evidence store: SQLite in WAL mode with synchronous=FULL, so a commit is fsynced before the ack.

`statements` keeps every accepted statement (GET by id, audit); `evidence` holds the scored responses the
mastery model replays; `sync_outbox` (edge.sync.outbox) queues what goes to the district, filled IN THE SAME
transaction that stores a statement or compact evidence item, so nothing is acknowledged that sync would not
send. One connection, used from one writer thread only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.config import UnitConfig
from edge.mastery.model import CellView
from edge.mastery.xapi import Evidence, evidence_statement, outbound
from edge.sync.outbox import Outbox
from edge.sync.snapshots import snapshot_item

SCHEMA = """
CREATE TABLE IF NOT EXISTS statements (
    id TEXT PRIMARY KEY,
    stored_at TEXT NOT NULL,         -- ISO 8601 UTC, when this unit accepted it
    digest TEXT NOT NULL,            -- sha256 of the statement as sent (a re-send must match it)
    body TEXT NOT NULL               -- the statement as stored (with id, timestamp, stored, authority, version)
);
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
CREATE TABLE IF NOT EXISTS snapshot_marks (  -- what the last mastery snapshot sent, per cell
    student TEXT NOT NULL,
    skill TEXT NOT NULL,
    responses INTEGER NOT NULL,
    PRIMARY KEY (student, skill)
);
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
    def __init__(self, path: Path, home_page: str = "https://classroom-edge.invalid/students") -> None:
        self.home_page = home_page  # students' account homePage in statements built from compact evidence
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (savepoints per request inside a group)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # WAL + FULL: the WAL is fsynced at every commit
        self.db.executescript(SCHEMA)
        Outbox.install(self.db)

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
                        Outbox.add(db, item.id, json.dumps(outbound(item.body)))
                    ev = item.evidence
                    if ev is not None:
                        cur = db.execute(
                            "INSERT OR IGNORE INTO evidence (id, student, skill, correct, ts_us, digest, source)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (ev.id, ev.student, ev.skill, int(ev.correct), ev.ts_us, item.digest,
                             "xapi" if item.body is not None else "api"))
                        if cur.rowcount:
                            new.append(ev)
                            if item.body is None:  # compact evidence reaches the district as a statement
                                st = evidence_statement(ev, self.home_page)
                                Outbox.add(db, st["id"], json.dumps(st))
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

    def queue_snapshots(self, cells: Sequence[CellView], at: datetime, unit: UnitConfig,
                        band: Callable[[float], str]) -> int:
        """Queue one snapshot statement per cell whose response count changed since the last snapshot.

        The marks and the queued statements commit together, so a crash neither loses nor repeats a snapshot.
        """
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            marks = {(st, sk): n for st, sk, n in db.execute("SELECT student, skill, responses FROM snapshot_marks")}
            queued = 0
            for c in cells:
                if c.responses == marks.get((c.student, c.skill)):
                    continue
                sid, body = snapshot_item(student=c.student, skill=c.skill, p_mastery=c.p_known,
                                          evidence_count=c.responses, at=at, home_page=self.home_page, unit=unit,
                                          band=band(c.p_known))
                Outbox.add(db, sid, body)
                db.execute("INSERT OR REPLACE INTO snapshot_marks (student, skill, responses) VALUES (?, ?, ?)",
                           (c.student, c.skill, c.responses))
                queued += 1
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return queued

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
