"""The collector's store: the last heartbeat of every unit, in SQLite (WAL, synchronous=FULL).

One writer (the collector's writer thread) applies heartbeats in groups: whatever arrived while the previous
transaction was fsyncing goes into the next one, so a burst of 5,000 units after a district-wide power cut
costs a few dozen fsyncs, not 5,000. Bounded: at most `max_units` units (a heartbeat from a new unit beyond
that is refused, known units keep reporting), and a unit id stays with the school that first reported it
(another school's token cannot overwrite it; `edge fleet forget` releases it).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    id          TEXT PRIMARY KEY,
    school      TEXT NOT NULL,
    room        TEXT NOT NULL,
    hostname    TEXT NOT NULL,
    version     TEXT NOT NULL,
    address     TEXT,
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL,
    heartbeats  INTEGER NOT NULL,
    doc         TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS units_by_school ON units (school, room);
"""

ACCEPTED, FULL, OTHER_SCHOOL = "accepted", "full", "other_school"


@dataclass
class Heartbeat:
    """A validated heartbeat, ready to store; `outcome` is set by the writer."""

    unit_id: str
    school: str
    room: str
    hostname: str
    version: str
    address: str | None
    received_at: float
    doc: dict[str, Any]
    outcome: str = ""
    owner_school: str = ""  # set with OTHER_SCHOOL: the school the id belongs to


class FleetStore:
    """Not thread-safe by itself: the collector calls it from one writer thread (reads use their own
    connection through `reader()`)."""

    def __init__(self, path: Path, max_units: int) -> None:
        self.path = path
        self.max_units = max_units
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = self._connect()
        self.db.executescript(SCHEMA)
        self.schools: dict[str, str] = dict(self.db.execute("SELECT id, school FROM units").fetchall())
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a 204 to a unit means its heartbeat is on disk
        db.execute("PRAGMA busy_timeout=5000")
        return db

    def reader(self) -> sqlite3.Connection:
        db = self._connect()
        db.execute("PRAGMA query_only=1")
        return db

    def write_group(self, beats: list[Heartbeat]) -> None:
        """Apply heartbeats in one transaction (in arrival order); sets each one's outcome."""
        rows = []
        for hb in beats:
            owner = self.schools.get(hb.unit_id)
            if owner is not None and owner != hb.school:
                hb.outcome, hb.owner_school = OTHER_SCHOOL, owner
                continue
            if owner is None and len(self.schools) >= self.max_units:
                hb.outcome = FULL
                continue
            self.schools[hb.unit_id] = hb.school
            hb.outcome = ACCEPTED
            rows.append((hb.unit_id, hb.school, hb.room, hb.hostname, hb.version, hb.address, hb.received_at,
                         hb.received_at, json.dumps(hb.doc, separators=(",", ":"))))
        if not rows:
            return
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany(
                    """INSERT INTO units (id, school, room, hostname, version, address, first_seen, last_seen,
                                          heartbeats, doc)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
                       ON CONFLICT (id) DO UPDATE SET
                           room = excluded.room, hostname = excluded.hostname, version = excluded.version,
                           address = excluded.address, last_seen = max(units.last_seen, excluded.last_seen),
                           heartbeats = units.heartbeats + 1, doc = excluded.doc""",
                    rows)
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                # the in-memory owner map may now hold ids that were not stored: rebuild it from the file
                self.schools = dict(self.db.execute("SELECT id, school FROM units").fetchall())
                raise

    def forget(self, unit_id: str) -> bool:
        with self._lock:
            cur = self.db.execute("DELETE FROM units WHERE id = ?", (unit_id,))
        self.schools.pop(unit_id, None)
        return cur.rowcount > 0

    def close(self) -> None:
        self.db.close()


def load_units(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every unit's stored state (the last heartbeat document plus what the collector saw)."""
    out = []
    for uid, school, room, hostname, version, address, first_seen, last_seen, beats, doc in db.execute(
            "SELECT id, school, room, hostname, version, address, first_seen, last_seen, heartbeats, doc "
            "FROM units ORDER BY school, room, id"):
        out.append({"id": uid, "school": school, "room": room, "hostname": hostname, "version": version,
                    "address": address, "first_seen": first_seen, "last_seen": last_seen, "heartbeats": beats,
                    "doc": json.loads(doc)})
    return out
