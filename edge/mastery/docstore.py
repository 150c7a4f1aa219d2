"""Document resources (State, Activity Profile, Agent Profile) in the mastery SQLite file.

A write (`DocWrite`) is decided and applied inside the store's group transaction on the writer thread, so a
class of Chromebooks saving state shares one fsync, and its precondition (If-Match / If-None-Match, the
409 for an unconditional PUT over a profile) is checked against exactly what it replaces. Reads run on the
reader connection.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.exc import RequestError
from edge.xapi.documents import RESOURCES, Target, etag, matches, merge

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,              -- state, activity_profile, agent_profile
    activity TEXT NOT NULL,          -- activityId ('' for agent profiles)
    agent TEXT NOT NULL,             -- the agent's IFI key ('' for activity profiles)
    registration TEXT NOT NULL,      -- '' for none
    doc_id TEXT NOT NULL,            -- stateId / profileId
    content BLOB NOT NULL,
    content_type TEXT NOT NULL,
    etag TEXT NOT NULL,
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (kind, agent, activity, registration, doc_id)
) WITHOUT ROWID;
"""
_KEY = "kind = ? AND agent = ? AND activity = ? AND registration = ? AND doc_id = ?"


@dataclass(frozen=True)
class Document:
    content: bytes
    content_type: str
    etag: str
    updated_us: int


def _key(t: Target) -> tuple[str, str, str, str, str]:
    return (t.kind, t.agent, t.activity, t.registration, t.doc_id or "")


def _scope(t: Target) -> tuple[str, list[Any]]:
    """Every document of the target's agent/activity (and registration, when given)."""
    where, args = "kind = ? AND agent = ? AND activity = ?", [t.kind, t.agent, t.activity]
    if t.registration:
        where += " AND registration = ?"
        args.append(t.registration)
    return where, args


def get(db: sqlite3.Connection, t: Target) -> Document | None:
    row = db.execute(f"SELECT content, content_type, etag, updated_us FROM documents WHERE {_KEY}", _key(t)).fetchone()
    return None if row is None else Document(bytes(row[0]), str(row[1]), str(row[2]), int(row[3]))


def ids(db: sqlite3.Connection, t: Target) -> tuple[list[str], int | None]:
    """The ids of the scope's documents (updated after `since`), and the newest update among them."""
    where, args = _scope(t)
    if t.since_us is not None:
        where += " AND updated_us > ?"
        args.append(t.since_us)
    rows = db.execute(f"SELECT DISTINCT doc_id, updated_us FROM documents WHERE {where} ORDER BY doc_id",
                      args).fetchall()
    return sorted({str(r[0]) for r in rows}), max((int(r[1]) for r in rows), default=None)


@dataclass
class DocWrite:
    """One PUT, POST or DELETE of a document; `error` holds the refusal (nothing written then)."""

    target: Target
    method: str
    content: bytes
    content_type: str
    if_match: str | None
    if_none_match: str | None
    now_us: int
    error: RequestError | None = None

    def apply(self, db: sqlite3.Connection) -> None:
        """Decide and write inside the caller's transaction; a refusal raises before anything is written."""
        t = self.target
        if self.method == "DELETE" and t.doc_id is None:
            where, args = _scope(t)
            db.execute(f"DELETE FROM documents WHERE {where}", args)
            return
        old = get(db, t)
        old_tag = old.etag if old is not None else None
        if self.if_match is not None and not matches(old_tag, self.if_match):
            raise RequestError(412, "If-Match does not match the document's current ETag", key="If-Match")
        if self.if_none_match is not None and matches(old_tag, self.if_none_match):
            raise RequestError(412, "If-None-Match: the document exists (or has that ETag)", key="If-None-Match")
        if self.method == "DELETE":
            db.execute(f"DELETE FROM documents WHERE {_KEY}", _key(t))
            return
        conditional = self.if_match is not None or self.if_none_match is not None
        if self.method == "PUT" and RESOURCES[t.kind].concurrency and not conditional:
            if old is not None:
                raise RequestError(409, "this document exists: send If-Match with its ETag to replace it",
                                   key="If-Match")
            raise RequestError(400, "a profile PUT needs If-Match (its ETag) or If-None-Match: * (a new one)",
                               key="If-None-Match")
        content, ctype = self.content, self.content_type
        if self.method == "POST" and old is not None:
            content, ctype = merge(old.content, old.content_type, content, ctype), old.content_type
        db.execute("INSERT INTO documents (kind, agent, activity, registration, doc_id, content, content_type, etag,"
                   " updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET content = "
                   "excluded.content, content_type = excluded.content_type, etag = excluded.etag, "
                   "updated_us = excluded.updated_us", (*_key(t), content, ctype, etag(content), self.now_us))
