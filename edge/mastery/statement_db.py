"""How statements are kept queryable in the mastery SQLite file: the columns and key rows each statement is
indexed by, voiding, activity definitions, and the queries of GET /xapi/statements.

Written by the store's writer connection inside its group transaction (`insert`); read by a reader
connection on its own thread (`Reads`), which WAL lets run beside the writer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.db import transaction
from edge.xapi import StatementIndex, canonical, index_of
from edge.xapi.agents import ifi_key
from edge.xapi.formats import parse_timestamp, timestamp_us
from edge.xapi.query import Query
from edge.xapi.statements import ACTIVITY, ACTIVITY_RELATED, AGENT, AGENT_RELATED
from edge.xapi.vocab import AUTHORITY

COLUMNS = {  # added to the statements table (ALTER TABLE for a store written by an older version)
    "seq": "INTEGER",
    "stored_us": "INTEGER",
    "verb": "TEXT",
    "registration": "TEXT",
    "ref": "TEXT",
    "voiding": "INTEGER NOT NULL DEFAULT 0",
    "voided": "INTEGER NOT NULL DEFAULT 0",
}
SCHEMA = """
CREATE UNIQUE INDEX IF NOT EXISTS statements_seq ON statements (seq);
CREATE INDEX IF NOT EXISTS statements_verb ON statements (verb, seq);
CREATE INDEX IF NOT EXISTS statements_registration ON statements (registration, seq) WHERE registration IS NOT NULL;
CREATE INDEX IF NOT EXISTS statements_ref ON statements (ref) WHERE ref IS NOT NULL;
CREATE TABLE IF NOT EXISTS statement_keys (  -- agents and activities a statement is found by
    key TEXT NOT NULL,               -- an agent's IFI key or an activity id
    kind INTEGER NOT NULL,           -- edge.xapi.statements: AGENT, AGENT_RELATED, ACTIVITY, ...
    seq INTEGER NOT NULL,
    PRIMARY KEY (key, kind, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activities (  -- the latest definition each activity came with (GET /activities)
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
"""
AUTHORITY_KEY = ifi_key(AUTHORITY)
MAX_DEFINITIONS_CACHED = 10_000
StatementRow = tuple[str, str, str, str, int, int, str, str | None, str | None, int]


def install(db: sqlite3.Connection) -> None:
    """Add the query columns and tables (and index what an older version stored); idempotent."""
    have = {row[1] for row in db.execute("PRAGMA table_info(statements)")}
    missing = [c for c in COLUMNS if c not in have]
    for c in missing:
        db.execute(f"ALTER TABLE statements ADD COLUMN {c} {COLUMNS[c]}")
    db.executescript(SCHEMA)
    if missing:
        _backfill(db)


def body_index(body: str) -> StatementIndex:
    """The index of a stored body: one accepted by an older, laxer validation gets what can be read."""
    st = json.loads(body)
    try:
        return index_of(st)
    except (KeyError, TypeError, AttributeError):
        verb = st.get("verb")
        return StatementIndex(str(verb.get("id", "")) if isinstance(verb, dict) else "", None, None, False)


def _backfill(db: sqlite3.Connection) -> None:
    """Index statements stored before the statements were queryable (one transaction, at start-up)."""
    with transaction(db):
        rows = db.execute("SELECT rowid, id, body, stored_at FROM statements ORDER BY rowid").fetchall()
        for rowid, sid, body, stored_at in rows:
            idx = body_index(body)
            when = parse_timestamp(stored_at)
            db.execute("UPDATE statements SET seq = ?, stored_us = ?, verb = ?, registration = ?, ref = ?, "
                       "voiding = ? WHERE id = ?", (rowid, timestamp_us(when) if when else 0, idx.verb,
                                                    idx.registration, idx.ref, int(idx.voids), sid))
            db.executemany("INSERT OR IGNORE INTO statement_keys (key, kind, seq) VALUES (?, ?, ?)",
                           [(k, kind, rowid) for k, kind in idx.keys])


def merge_definitions(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """An activity's definition after another statement described it: names and descriptions gain the new
    languages (new text wins), every other property is the newest."""
    out = {**old, **new}
    for k in ("name", "description"):
        if isinstance(old.get(k), dict) and isinstance(new.get(k), dict):
            out[k] = {**old[k], **new[k]}
    return out


class Writer:
    """Inserts statements with their index rows on the writer connection (inside its transaction)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.next_seq = int(db.execute("SELECT coalesce(max(seq), 0) FROM statements").fetchone()[0]) + 1
        self._definitions: dict[str, str] = {}

    def rows(self, sid: str, stored_at: str, stored_us: int, digest: str, body: str,
             idx: StatementIndex | None) -> tuple[StatementRow, list[tuple[str, int, int]]]:
        """The statement row and its key rows (seq assigned in commit order)."""
        seq = self.next_seq
        self.next_seq += 1
        if idx is None:  # not prepared by the intake: index it from its body
            idx = body_index(body)
        row = (sid, stored_at, digest, body, seq, stored_us, idx.verb, idx.registration, idx.ref, int(idx.voids))
        return row, [(k, kind, seq) for k, kind in idx.keys]

    def insert(self, rows: Sequence[StatementRow], keys: Sequence[tuple[str, int, int]],
               definitions: Sequence[tuple[str, str]], voids: Sequence[str]) -> list[str]:
        """Insert; returns the ids of the statements voided by this (voiding statements' targets, and new
        statements that a stored voiding statement already targets)."""
        db = self.db
        db.executemany("INSERT INTO statements (id, stored_at, digest, body, seq, stored_us, verb, registration, ref,"
                       " voiding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT OR IGNORE INTO statement_keys (key, kind, seq) VALUES (?, ?, ?)", keys)
        self._definitions_seen(definitions)
        new_ids = json.dumps([r[0] for r in rows])
        # a voiding statement voids its target (not another voiding statement); a statement that arrives after
        # the statement voiding it is voided at once
        targets = list(voids) + [r[0] for r in db.execute(
            "SELECT ref FROM statements WHERE voiding = 1 AND ref IN (SELECT value FROM json_each(?))", (new_ids,))]
        if targets:
            db.execute("UPDATE statements SET voided = 1 WHERE voiding = 0 AND id IN (SELECT value FROM json_each(?))",
                       (json.dumps(targets),))
        return targets

    def _definitions_seen(self, definitions: Sequence[tuple[str, str]]) -> None:
        """Merge each definition into the activity's stored one (language maps entry by entry, the rest the
        newest), writing only what changes: a lesson's statements repeat the same definitions."""
        if len(self._definitions) > MAX_DEFINITIONS_CACHED:
            self._definitions.clear()
        for activity, new in definitions:
            old = self._definitions.get(activity)
            if old is None:
                row = self.db.execute("SELECT definition FROM activities WHERE id = ?", (activity,)).fetchone()
                old = None if row is None else str(row[0])
            if old == new:
                self._definitions[activity] = new
                continue
            merged = new if old is None else canonical(merge_definitions(json.loads(old), json.loads(new)))
            if merged != old:
                self.db.execute("INSERT INTO activities (id, definition) VALUES (?, ?) "
                                "ON CONFLICT(id) DO UPDATE SET definition = excluded.definition", (activity, merged))
            self._definitions[activity] = merged

    def voided_evidence(self, ids: Sequence[str]) -> list[tuple[str, str, str]]:
        """(id, student, skill) of the evidence of these (now voided) statements."""
        return [(str(i), str(s), str(k)) for i, s, k in self.db.execute(
            "SELECT e.id, e.student, e.skill FROM evidence e JOIN statements s ON s.id = e.id "
            "WHERE s.voided = 1 AND e.id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),))]


@dataclass(frozen=True)
class Page:
    bodies: list[str]
    last_seq: int | None  # the position to continue from (None: no more)
    upto: int  # the newest seq this result could see


class Reads:
    """Statement reads on a reader connection (one thread)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def one(self, sid: str, voided: bool) -> str | None:
        row = self.db.execute("SELECT body FROM statements WHERE id = ? AND voided = ?", (sid, int(voided))).fetchone()
        return None if row is None else str(row[0])

    def page(self, q: Query) -> Page:
        """One page of a query, newest first unless ascending; voided statements never appear."""
        db = self.db
        upto = q.upto if q.upto is not None else int(db.execute("SELECT coalesce(max(seq), 0) FROM statements")
                                                     .fetchone()[0])
        sql, where, args = "", [], []
        match, match_args = _match(q, "")
        if match:
            # StatementRefs to a matching statement (voided or not) match too, recursively
            target, _ = _match(q, "t.")
            sql = (f"WITH RECURSIVE refs(id) AS (SELECT s.id FROM statements s JOIN statements t ON t.id = s.ref "
                   f"WHERE s.ref IS NOT NULL AND {target} UNION "
                   f"SELECT s.id FROM statements s JOIN refs ON s.ref = refs.id) ")
            where.append(f"seq IN (SELECT seq FROM statements WHERE {match} UNION "
                         f"SELECT seq FROM statements WHERE id IN (SELECT id FROM refs))")
            args = [*match_args, *match_args]
        where += ["voided = 0", "seq <= ?"]
        args.append(upto)
        if q.after is not None:
            where.append("seq > ?" if q.ascending else "seq < ?")
            args.append(q.after)
        if q.since_us is not None:
            where.append("stored_us > ?")
            args.append(q.since_us)
        if q.until_us is not None:
            where.append("stored_us <= ?")
            args.append(q.until_us)
        order = "ASC" if q.ascending else "DESC"
        sql += f"SELECT seq, body FROM statements WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?"
        rows = db.execute(sql, (*args, q.limit + 1)).fetchall()
        more = len(rows) > q.limit
        rows = rows[:q.limit]
        return Page([str(b) for _, b in rows], int(rows[-1][0]) if more else None, upto)

    def activity(self, activity_id: str) -> str | None:
        row = self.db.execute("SELECT definition FROM activities WHERE id = ?", (activity_id,)).fetchone()
        return None if row is None else str(row[0])


def _match(q: Query, t: str) -> tuple[str, list[object]]:
    """The filter on a statement's own properties, as SQL on the statements row prefixed `t` ("" or "t.")."""
    conds: list[str] = []
    args: list[object] = []
    keyed = []
    if q.agent is not None and not (q.related_agents and q.agent == AUTHORITY_KEY):  # we are every authority
        keyed.append((q.agent, (AGENT, AGENT_RELATED) if q.related_agents else (AGENT,)))
    if q.activity is not None:
        keyed.append((q.activity, (ACTIVITY, ACTIVITY_RELATED) if q.related_activities else (ACTIVITY,)))
    for key, kinds in keyed:
        conds.append(f"{t}seq IN (SELECT seq FROM statement_keys WHERE key = ? AND kind IN "
                     f"({','.join(map(str, kinds))}))")
        args.append(key)
    if q.verb is not None:
        conds.append(f"{t}verb = ?")
        args.append(q.verb)
    if q.registration is not None:
        conds.append(f"{t}registration = ?")
        args.append(q.registration)
    return " AND ".join(conds), args
