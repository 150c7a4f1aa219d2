"""The evidence store's group commit: requests decided in order, each all-or-nothing, WAL checkpointed aside."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from edge.mastery.store import BACKSTOP_CHECKPOINT_PAGES, Item, Store, WriteRequest
from edge.xapi import Evidence, evidence_statement

STORED_AT = "2024-05-01T10:00:00.000000Z"


def st_item(sid: str, digest: str, student: str = "s1", correct: bool = True, evidence: bool = True) -> Item:
    body = {"id": sid, "actor": {"account": {"homePage": "https://s.example", "name": student}},
            "timestamp": "2024-05-01T09:00:00Z", "version": "1.0.3"}
    outbound = json.dumps(body)
    stored = json.dumps({**body, "stored": STORED_AT})
    ev = Evidence(sid, student, "fractions", correct, 1714554000_000000) if evidence else None
    return Item(sid, digest, stored, ev, outbound)


def compact(eid: str, digest: str, correct: bool = True) -> Item:
    return Item(eid, digest, None, Evidence(eid, "s2", "fractions", correct, 1714554060_000000))


def scenario() -> list[list[Item]]:
    """Requests whose outcomes depend on the ones before them (the same ids across requests)."""
    s1, s2, s3, s4, c1 = (str(uuid.uuid4()) for _ in range(5))
    return [
        [st_item(s1, "d1"), compact(c1, "dc1")],
        [st_item(s1, "d1"), st_item(s2, "d2", evidence=False)],  # s1 again, same content: a no-op
        [st_item(s3, "d3"), st_item(s1, "other")],  # conflict on s1: s3 must not be stored either
        [compact(c1, "dc1-changed")],  # conflict with the stored compact item
        [compact(s1, "dx")],  # clashes with the evidence that statement s1 carried
        [st_item(c1, "d4")],  # a statement whose id is a compact item's: stored, its evidence is not new
        [st_item(s4, "d5"), st_item(s4, "d5")],  # a repeat inside one request
    ]


def outcome(store: Store, requests: list[WriteRequest]) -> dict[str, Any]:
    db = store.db
    return {
        "conflicts": [r.conflict for r in requests],
        "new": [[e.id for e in r.new_evidence] for r in requests],
        "statements": sorted(db.execute("SELECT id, digest, body FROM statements").fetchall()),
        "evidence": sorted(db.execute("SELECT id, student, digest, source FROM evidence").fetchall()),
        "outbox": db.execute("SELECT id, body FROM sync_outbox ORDER BY seq").fetchall(),
    }


def test_one_group_decides_like_one_request_at_a_time(tmp_path: Path) -> None:
    items = scenario()
    grouped = Store(tmp_path / "a" / "m.sqlite3")
    together = [WriteRequest(i, STORED_AT) for i in items]
    grouped.write_group(together)
    single = Store(tmp_path / "b" / "m.sqlite3")
    apart = [WriteRequest(i, STORED_AT) for i in items]
    for req in apart:
        single.write_group([req])
    got, expected = outcome(grouped, together), outcome(single, apart)
    grouped.close()
    single.close()
    assert got == expected

    s1, c1, s4 = items[0][0].id, items[0][1].id, items[6][0].id
    assert got["conflicts"] == [None, None, s1, c1, s1, None, None]
    assert got["new"] == [[s1, c1], [], [], [], [], [], [s4]]
    stored_ids = {row[0] for row in got["statements"]}
    assert stored_ids == {s1, items[1][1].id, c1, s4}  # not s3 (its request had a conflict)
    assert {row[0]: row[3] for row in got["evidence"]} == {s1: "xapi", c1: "api", s4: "xapi"}
    # queued for the district in the same transaction: each new statement as sent on, and the compact item
    # as the statement built for it
    queued = dict(got["outbox"])
    ev = items[0][1].evidence
    assert ev is not None
    assert set(queued) == stored_ids | {evidence_statement(ev, grouped.home_page)["id"]}
    assert json.loads(queued[s1]) == json.loads(items[0][0].outbound)


def test_a_failing_group_stores_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.sqlite3")
    good = WriteRequest([st_item(str(uuid.uuid4()), "d")], STORED_AT)
    bad = st_item(str(uuid.uuid4()), "d")
    bad.outbound = json.dumps({"id": "someone-else", "timestamp": "2024-05-01T09:00:00Z"})
    with pytest.raises(ValueError, match="with this id"):
        store.write_group([good, WriteRequest([bad], STORED_AT)])
    assert good.new_evidence == []
    assert store.count("statements") == 0 and store.count("evidence") == 0
    assert store.db.execute("SELECT count(*) FROM sync_outbox").fetchone() == (0,)
    store.close()


def test_wal_is_checkpointed_by_the_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = Store(path)
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (BACKSTOP_CHECKPOINT_PAGES,)
    store.checkpointer.close()  # stop the thread: checkpoint by hand below, deterministically
    store.checkpointer.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    store.write_group([WriteRequest([st_item(str(uuid.uuid4()), "d") for _ in range(200)], STORED_AT)])
    busy, wal_pages, done = store.checkpointer.checkpoint()
    assert busy == 0 and wal_pages > 0 and done == wal_pages  # everything committed is now in the database file
    store.checkpointer.db.close()
    store.db.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM statements").fetchone() == (200,)
    db.close()


def test_the_checkpointer_thread_runs_after_commits_and_stops(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.sqlite3")
    cp = store.checkpointer
    calls: list[tuple[int, int, int]] = []
    done = threading.Event()
    real = cp.checkpoint

    def spy() -> tuple[int, int, int]:
        calls.append(real())
        done.set()
        return calls[-1]

    cp.checkpoint = spy  # type: ignore[method-assign]
    store.write_group([WriteRequest([st_item(str(uuid.uuid4()), "d")], STORED_AT)])
    assert done.wait(10)
    assert calls[0][0] == 0 and calls[0][1] == calls[0][2]
    store.close()
    assert not cp._thread.is_alive()
