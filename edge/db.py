"""SQLite the way every durable store here needs it: WAL, synchronous=FULL, and one transaction helper.

WAL + synchronous=FULL means a COMMIT is fsynced before it returns (nothing acknowledged is lost in a power
cut) while readers never block the writer. `transaction` is the only place BEGIN IMMEDIATE / COMMIT /
ROLLBACK are written (diskcache's `_transact` is the model): IMMEDIATE takes the write lock at the start,
so a read-modify-write inside it cannot be overtaken by another writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def connect(path: Path, *, timeout: float = 30.0, check_same_thread: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=FULL, waiting for locks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raises (anything, KeyboardInterrupt included)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
