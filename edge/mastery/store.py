"""Durable evidence store: SQLite in WAL mode with synchronous=FULL, so a commit is fsynced before the ack.

`statements` keeps every accepted statement, indexed for the xAPI queries (edge.mastery.statement_db);
`evidence` holds the scored responses the mastery model replays; `documents` the State and Profile documents
(edge.mastery.docstore); `sync_outbox` (edge.sync.outbox) queues what goes to the district, filled IN THE
SAME transaction that stores a statement or compact evidence item, so nothing is acknowledged that sync
would not send; `attachments` holds attachment content for both. One connection, used from one writer
thread only (one more, on its own thread, checkpoints the WAL off the commit path; readers open their own).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.config import UnitConfig
from edge.db import connect, transaction
from edge.exc import RequestError
from edge.mastery import docstore, statement_db
from edge.mastery.docstore import DocWrite
from edge.mastery.model import CellView
from edge.resource import Resource
from edge.sync.outbox import Outbox
from edge.xapi import Evidence, Item, evidence_statement, snapshot_item
from edge.xapi.formats import parse_timestamp, timestamp_us
from edge.xapi.multipart import Part

log = logging.getLogger(__name__)
# The writer connection checkpoints by itself only once the WAL holds this many pages (~40 MB): the
# Checkpointer thread normally keeps it far smaller.
BACKSTOP_CHECKPOINT_PAGES = 10_000

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
CREATE TABLE IF NOT EXISTS launch_fetches (  -- cmi5 fetch URLs already used (each works once)
    id TEXT PRIMARY KEY,
    at_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshot_marks (  -- what the last mastery snapshot sent, per cell
    student TEXT NOT NULL,
    skill TEXT NOT NULL,
    responses INTEGER NOT NULL,
    PRIMARY KEY (student, skill)
);
"""


class Checkpointer:
    """Copies the WAL into the database file on its own thread and connection, after commits.

    PASSIVE checkpoints never wait for (or block) the writer; committed transactions are durable in the WAL
    already, so this only keeps the WAL short and reads fast. At most one checkpoint per `every` seconds.
    """

    def __init__(self, path: Path, every: float = 0.25) -> None:
        self.every = every
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA synchronous=FULL")  # a checkpoint fsyncs the database file before the WAL restarts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mastery-checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Something was committed: checkpoint soon."""
        self._wake.set()

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint now: (busy, WAL pages, pages checkpointed), as SQLite reports it."""
        busy, log_pages, done = self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(log_pages), int(done)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.checkpoint()
            except sqlite3.Error as e:  # e.g. the disk is full: the writer's backstop checkpoint still runs
                log.warning("WAL checkpoint failed: %s", e)
            self._stop.wait(self.every)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.db.close()


@dataclass
class WriteRequest:
    """All items of one HTTP request: stored together or (on a conflict) not at all."""

    items: Sequence[Item]
    stored_at: str
    conflict: str | None = None  # the id that clashed
    new_evidence: list[Evidence] = field(default_factory=list)
    attachments: Mapping[str, Part] = field(default_factory=dict)  # sha2 -> content of the statements' attachments
    stored_us: int = 0  # stored_at in microseconds (derived when 0)

    def __post_init__(self) -> None:
        if not self.stored_us:
            when = parse_timestamp(self.stored_at)
            self.stored_us = timestamp_us(when) if when is not None else 0


EvidenceRow = tuple[str, str, str, int, int, str, str]
Decided = tuple[list[statement_db.StatementRow], list[tuple[str, int, int]], list[EvidenceRow],
                list[tuple[str, str]], list[tuple[str, str]], list[str], dict[str, Part]]
# One statement whatever the number of ids (a JSON array parameter): prepared once, cached by sqlite3.
_DIGESTS = {table: f"SELECT id, digest FROM {table} WHERE id IN (SELECT value FROM json_each(?))"
            for table in ("statements", "evidence")}


class Store(Resource):
    def __init__(self, path: Path, home_page: str = "https://classroom-edge.invalid/students") -> None:
        self.path = path
        self.home_page = home_page  # students' account homePage in statements built from compact evidence
        self.db = connect(path)  # WAL + synchronous=FULL: the WAL is fsynced at every commit
        self.db.executescript(SCHEMA)
        Outbox.install(self.db)
        statement_db.install(self.db)
        self.db.executescript(docstore.SCHEMA)
        self.statements = statement_db.Writer(self.db)
        # Checkpoints (copying the WAL into the database file, and fsyncing it) run on their own thread and
        # connection, so a commit - and the requests waiting on it - only pays for appending to the WAL.
        # The writer's own auto-checkpoint stays as a backstop for a checkpointer that falls behind.
        self.db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
        self.checkpointer = Checkpointer(path)

    def close(self) -> None:
        self.checkpointer.close()
        self.db.close()


    def write_group(self, requests: Sequence[WriteRequest], docs: Sequence[DocWrite] = ()) -> list[tuple[str, str]]:
        """Store several requests (and document writes) in ONE transaction (one fsync); each all-or-nothing.

        Requests are decided in order against what is stored and what the earlier requests of the group add
        (two lookups for the whole group), then written with one multi-row statement per table: an id stored
        with the same digest is a no-op, with another digest a conflict that stores nothing of its request.
        A document write that is refused (its `error`) writes nothing and does not disturb the others.
        Returns the (student, skill) cells that lost evidence to a voiding statement (the model replays them).
        """
        try:
            with transaction(self.db) as db:
                statement_rows, keys, evidence_rows, outbound, definitions, voids, parts = self._decide(requests)
                voided = self.statements.insert(statement_rows, keys, definitions, voids)
                db.executemany("INSERT INTO evidence (id, student, skill, correct, ts_us, digest, source)"
                               " VALUES (?, ?, ?, ?, ?, ?, ?)", evidence_rows)
                # statements prepared by the intake carry a body built to the outbox's contract (edge.xapi
                # .statements.prepare_statements): only the others are parsed again to check it
                Outbox.add_many(db, outbound, checked={i.id for r in requests for i in r.items if i.index is not None})
                Outbox.add_attachments(db, ((h, p.content_type, p.data) for h, p in parts.items()))
                gone = self._drop_voided_evidence(voided) if voided else []
                for op in docs:
                    try:
                        op.apply(db)
                    except RequestError as e:
                        op.error = e
        except BaseException:
            for req in requests:
                req.new_evidence = []
            raise
        self.checkpointer.nudge()
        return gone

    def _drop_voided_evidence(self, voids: Sequence[str]) -> list[tuple[str, str]]:
        """Voided statements are no evidence: their rows leave the evidence table; returns the cells."""
        gone = self.statements.voided_evidence(voids)
        if gone:
            self.db.execute("DELETE FROM evidence WHERE id IN (SELECT value FROM json_each(?))",
                            (json.dumps([g[0] for g in gone]),))
        return sorted({(student, skill) for _, student, skill in gone})

    def _decide(self, requests: Sequence[WriteRequest]) -> Decided:
        """The rows to insert for `requests` (setting each one's `conflict` or `new_evidence`)."""
        stored = self._digests("statements", [i.id for r in requests for i in r.items if i.body is not None])
        evidence = self._digests("evidence", list(
            {i.id for r in requests for i in r.items if i.body is None}
            | {i.evidence.id for r in requests for i in r.items if i.evidence is not None}))
        out_rows: list[statement_db.StatementRow] = []
        out_keys: list[tuple[str, int, int]] = []
        evidence_rows: list[EvidenceRow] = []
        outbound: list[tuple[str, str]] = []
        definitions: list[tuple[str, str]] = []
        voids: list[str] = []
        parts: dict[str, Part] = {}
        for req in requests:
            new_st: dict[str, str] = {}
            new_ev: dict[str, str] = {}
            st_rows: list[statement_db.StatementRow] = []
            st_keys: list[tuple[str, int, int]] = []
            ev_rows: list[EvidenceRow] = []
            out: list[tuple[str, str]] = []
            new: list[Evidence] = []
            for item in req.items:
                if item.body is not None:
                    known = new_st.get(item.id) or stored.get(item.id)
                else:
                    known = new_ev.get(item.id) or evidence.get(item.id)
                if known is not None:
                    if known != item.digest:
                        req.conflict = item.id
                        break
                    continue  # the same thing again: a no-op
                if item.body is not None:
                    new_st[item.id] = item.digest
                    row, keys = self.statements.rows(item.id, req.stored_at, req.stored_us, item.digest, item.body,
                                                     item.index)
                    st_rows.append(row)
                    st_keys += keys
                    out.append((item.id, item.outbound))
                ev = item.evidence
                if ev is not None and ev.id not in new_ev and ev.id not in evidence:
                    new_ev[ev.id] = item.digest
                    ev_rows.append((ev.id, ev.student, ev.skill, int(ev.correct), ev.ts_us, item.digest,
                                    "xapi" if item.body is not None else "api"))
                    new.append(ev)
                    if item.body is None:  # compact evidence reaches the district as a statement
                        st = evidence_statement(ev, self.home_page)
                        out.append((st["id"], json.dumps(st)))
            if req.conflict is not None:
                continue  # nothing of this request
            stored.update(new_st)
            evidence.update(new_ev)
            out_rows += st_rows
            out_keys += st_keys
            evidence_rows += ev_rows
            outbound += out
            req.new_evidence = new
            parts.update(req.attachments)
            for item in req.items:
                idx = item.index
                if idx is not None and item.id in new_st:
                    definitions += idx.definitions
                    if idx.voids and idx.ref is not None:
                        voids.append(idx.ref)
        return out_rows, out_keys, evidence_rows, outbound, definitions, voids, parts

    def _digests(self, table: str, ids: list[str]) -> dict[str, str]:
        """{id: digest} of the given ids that `table` holds."""
        if not ids:
            return {}
        return dict(self.db.execute(_DIGESTS[table], (json.dumps(ids),)).fetchall())

    def use_fetch(self, fetch_id: str, now_us: int) -> bool:
        """Mark a cmi5 fetch URL used; False if it already was (each works once)."""
        with transaction(self.db) as db:
            return db.execute("INSERT OR IGNORE INTO launch_fetches (id, at_us) VALUES (?, ?)",
                              (fetch_id, now_us)).rowcount == 1

    def queue_snapshots(self, cells: Sequence[CellView], at: datetime, unit: UnitConfig,
                        band: Callable[[float], str]) -> int:
        """Queue one snapshot statement per cell whose response count changed since the last snapshot.

        The marks and the queued statements commit together, so a crash neither loses nor repeats a snapshot.
        """
        with transaction(self.db) as db:
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
