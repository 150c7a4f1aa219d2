"""The durable outbox: xAPI statements waiting for the district LRS, in SQLite (WAL, synchronous=FULL).

API for the producers (mastery intake, mastery snapshots)
--------------------------------------------------------
The intake queues a statement *in the same transaction* that stores it, on its own connection, so a
statement is either stored and queued or neither — a crash can never acknowledge evidence that the sync
would not send::

    Outbox.install(conn)                                  # once per connection/file: CREATE TABLE IF NOT EXISTS
    with transaction(conn):                               # edge.db: BEGIN IMMEDIATE ... COMMIT (fsynced)
        ... store the statement ...
        Outbox.add(conn, statement_id, body_json)          # -> True if queued, False if that id is already queued
        Outbox.add_many(conn, [(statement_id, body_json), ...])  # -> how many were new (one statement for many)

`body_json` is the statement exactly as it will be POSTed: JSON text of one object whose "id" is
`statement_id` and which has a "timestamp" (id + fixed content make a re-send idempotent at the LRS; an LRS
stamps a missing timestamp itself, so a re-sent copy would differ and be refused with 409). `add` never
commits.
Producers without a transaction of their own use `Outbox(path).enqueue([(id, body_json), ...])`.

API for the uploader and the status page
----------------------------------------
`Outbox(path)` opens its own connection to the same file: `pending(limit, after=0)` (oldest first),
`mark_sent(ids)`, `quarantine(id, reason)`, `note_success()`, `note_error(message)`, `status()`,
`attachments(hashes)` (the content of statements' attachments, kept by `add_attachments` when queued).
Sent rows are deleted (the mastery store keeps the statements themselves; a counter remains);
quarantined rows stay, with the reason, until someone looks at them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.db import connect, transaction
from edge.exc import StatementError
from edge.resource import Resource

PENDING, QUARANTINED = 0, 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS sync_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- queue order; never reused, so a round can page with `after`
    id TEXT NOT NULL UNIQUE,                -- xAPI statement id
    body TEXT NOT NULL,                     -- the statement JSON as it is POSTed
    queued_at REAL NOT NULL,                -- unix time
    state INTEGER NOT NULL DEFAULT 0,       -- 0 pending, 2 quarantined (sent rows are deleted)
    reason TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS sync_outbox_state ON sync_outbox (state, seq);
CREATE TABLE IF NOT EXISTS sync_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attachments (    -- attachment content of queued (and stored) statements, by SHA-2
    sha2 TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    content BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    id: str
    body: str


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class Outbox(Resource):
    """The uploader's and status page's handle on the outbox file (one connection; use from one thread)."""

    def __init__(self, path: Path, *, timeout: float = 30.0) -> None:
        self.path = path
        self.db = connect(path, timeout=timeout)
        self.install(self.db)


    # -- producers ---------------------------------------------------------------------------------------
    @staticmethod
    def install(conn: sqlite3.Connection) -> None:
        """Create the outbox tables on `conn` if they are missing (idempotent)."""
        conn.executescript(SCHEMA)

    @staticmethod
    def add(conn: sqlite3.Connection, statement_id: str, body_json: str, *, now: float | None = None) -> bool:
        """Queue one statement inside the caller's open transaction; False if the id is already queued.

        Raises StatementError if `body_json` is not one JSON object with "id" == `statement_id` (the LRS would
        give it a new id and a re-send would duplicate it).
        """
        Outbox.check(statement_id, body_json)
        cur = conn.execute(
            "INSERT OR IGNORE INTO sync_outbox (id, body, queued_at) VALUES (?, ?, ?)",
            (statement_id, body_json, time.time() if now is None else now),
        )
        return cur.rowcount == 1

    @staticmethod
    def add_many(conn: sqlite3.Connection, items: Iterable[tuple[str, str]], *, now: float | None = None,
                 checked: Collection[str] = ()) -> int:
        """`add` for many (id, body_json) pairs in one statement (a group commit's worth); returns how many
        were new. Every body is checked before anything is queued, except those whose ids are in `checked`
        (bodies the producer built to this contract itself, e.g. from validated statements)."""
        at = time.time() if now is None else now
        rows = [(sid, body, at) for sid, body in items]
        for sid, body, _ in rows:
            if sid not in checked:
                Outbox.check(sid, body)
        return conn.executemany("INSERT OR IGNORE INTO sync_outbox (id, body, queued_at) VALUES (?, ?, ?)",
                                rows).rowcount

    @staticmethod
    def add_attachments(conn: sqlite3.Connection, parts: Iterable[tuple[str, str, bytes]]) -> None:
        """Keep attachment content (sha2, content type, bytes) for statements queued in the same transaction:
        the uploader sends it with them (multipart/mixed). Content is stored once per hash."""
        conn.executemany("INSERT OR IGNORE INTO attachments (sha2, content_type, content) VALUES (?, ?, ?)",
                         [(sha2.lower(), ctype, data) for sha2, ctype, data in parts])

    @staticmethod
    def check(statement_id: str, body_json: str) -> None:
        """StatementError unless `body_json` is one JSON object with this "id" and a "timestamp"."""
        try:
            body = json.loads(body_json)
        except ValueError as e:
            raise StatementError(f"statement {statement_id}", f"body is not JSON: {e}") from None
        if not isinstance(body, dict) or body.get("id") != statement_id:
            raise StatementError(f"statement {statement_id}", "body must be a JSON object with this id")
        if not body.get("timestamp"):
            # Without one the LRS stamps its own receipt time, so a re-send after a crash would differ (409).
            raise StatementError(f"statement {statement_id}", "body needs a timestamp")

    def enqueue(self, items: Iterable[tuple[str, str]]) -> int:
        """Queue (id, body_json) pairs in one transaction of this handle; returns how many were new."""
        with transaction(self.db) as db:
            now = time.time()
            return sum(self.add(db, sid, body, now=now) for sid, body in items)

    # -- uploader ------------------------------------------------------------------------------------------
    def pending(self, limit: int, after: int = 0) -> list[OutboxItem]:
        """Up to `limit` unsent statements queued after sequence number `after`, oldest first."""
        rows = self.db.execute(
            "SELECT seq, id, body FROM sync_outbox WHERE state = 0 AND seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [OutboxItem(int(s), str(i), str(b)) for s, i, b in rows]

    def attachments(self, hashes: Collection[str]) -> dict[str, tuple[str, bytes]]:
        """{sha2: (content type, content)} of the attachment content held for these hashes."""
        return self.attachments_in(self.db, hashes)

    @staticmethod
    def attachments_in(conn: sqlite3.Connection, hashes: Collection[str]) -> dict[str, tuple[str, bytes]]:
        """`attachments` on any connection to the file (the mastery service's reader uses its own)."""
        if not hashes:
            return {}
        rows = conn.execute("SELECT sha2, content_type, content FROM attachments WHERE sha2 IN "
                            "(SELECT value FROM json_each(?))", (json.dumps(sorted(hashes)),)).fetchall()
        return {str(h): (str(t), bytes(c)) for h, t, c in rows}

    def mark_sent(self, ids: Collection[str]) -> int:
        """The LRS holds these statements (2xx): drop them from the queue. Returns how many were pending."""
        if not ids:
            return 0
        with transaction(self.db) as db:
            n = 0
            for chunk in _chunks(list(ids), 500):
                marks = ",".join("?" * len(chunk))
                n += db.execute(f"DELETE FROM sync_outbox WHERE state = 0 AND id IN ({marks})", chunk).rowcount
            self._bump(db, "sent_total", n)
            self._set(db, "last_success", repr(time.time()))
        return n

    def quarantine(self, statement_id: str, reason: str) -> bool:
        """Stop sending this statement (e.g. the LRS holds a different one under its id); kept for review."""
        with transaction(self.db) as db:
            cur = db.execute(
                "UPDATE sync_outbox SET state = 2, reason = ?, done_at = ? WHERE id = ? AND state = 0",
                (reason[:500], time.time(), statement_id),
            )
        return cur.rowcount == 1

    def requeue(self, ids: Collection[str] | None = None) -> int:
        """Put quarantined statements (all, or these ids) back in the queue, e.g. after fixing the LRS."""
        with transaction(self.db) as db:
            if ids is None:
                return db.execute("UPDATE sync_outbox SET state = 0, reason = NULL, done_at = NULL "
                                  "WHERE state = 2").rowcount
            return sum(db.execute("UPDATE sync_outbox SET state = 0, reason = NULL, done_at = NULL "
                                  "WHERE state = 2 AND id = ?", (i,)).rowcount for i in ids)

    def note_success(self) -> None:
        """A round reached the LRS and had nothing (more) to send."""
        self._write_meta({"last_success": repr(time.time()), "last_error": "", "last_error_at": ""})

    def note_error(self, message: str) -> None:
        """The last round failed; `message` must not contain student ids (it is shown in status)."""
        self._write_meta({"last_error": message[:500], "last_error_at": repr(time.time())})

    def status(self) -> dict[str, Any]:
        db = self.db
        backlog, oldest = db.execute("SELECT count(*), min(queued_at) FROM sync_outbox WHERE state = 0").fetchone()
        (quarantined,) = db.execute("SELECT count(*) FROM sync_outbox WHERE state = 2").fetchone()
        recent = db.execute(
            "SELECT id, reason, done_at FROM sync_outbox WHERE state = 2 ORDER BY done_at DESC LIMIT 20"
        ).fetchall()
        meta = dict(db.execute("SELECT key, value FROM sync_meta").fetchall())

        def ts(key: str) -> float | None:
            v = meta.get(key, "")
            return float(v) if v else None

        now = time.time()
        return {
            "backlog": int(backlog),
            "oldest_unsent_at": _iso(oldest),
            "oldest_unsent_age_s": None if oldest is None else round(max(0.0, now - oldest), 1),
            "sent_total": int(meta.get("sent_total", "0")),
            "last_success": _iso(ts("last_success")),
            "last_error": meta.get("last_error") or None,
            "last_error_at": _iso(ts("last_error_at")),
            "quarantined": int(quarantined),
            "quarantine": [{"id": i, "reason": r, "at": _iso(t)} for i, r, t in recent],
        }

    def close(self) -> None:
        self.db.close()

    # -- helpers -------------------------------------------------------------------------------------------
    def _write_meta(self, values: dict[str, str]) -> None:
        with transaction(self.db) as db:
            for k, v in values.items():
                self._set(db, k, v)

    @staticmethod
    def _set(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT INTO sync_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                   (key, value, value))

    @staticmethod
    def _bump(db: sqlite3.Connection, key: str, n: int) -> None:
        db.execute(
            "INSERT INTO sync_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT)",
            (key, str(n), n),
        )


def _chunks(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
