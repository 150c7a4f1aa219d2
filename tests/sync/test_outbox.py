"""The outbox: queued in the producer's transaction, durable settings, ordering, sent/quarantine, status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.db import connect
from edge.sync.outbox import Outbox
from tests.sync.helpers import items, statement


def test_add_joins_the_callers_transaction(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    conn = connect(path)
    conn.execute("CREATE TABLE statements (id TEXT PRIMARY KEY)")
    Outbox.install(conn)
    (sid, body), (sid2, body2) = items(2)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO statements VALUES (?)", (sid,))
    assert Outbox.add(conn, sid, body) is True
    conn.execute("ROLLBACK")  # the store failed: nothing may be queued
    conn.execute("BEGIN IMMEDIATE")
    assert Outbox.add(conn, sid2, body2) is True
    assert Outbox.add(conn, sid2, body2) is False  # the same id again: a no-op
    conn.execute("COMMIT")
    ob = Outbox(path)
    assert [i.id for i in ob.pending(10)] == [sid2]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ob.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    ob.close()
    conn.close()


def test_add_refuses_bodies_that_would_not_resend_identically(tmp_path: Path) -> None:
    conn = connect(tmp_path / "m.sqlite3")
    Outbox.install(conn)
    st = statement(1)
    with pytest.raises(ValueError, match="with this id"):
        Outbox.add(conn, "other-id", json.dumps(st))
    with pytest.raises(ValueError, match="not JSON"):
        Outbox.add(conn, st["id"], "{nope")
    del st["timestamp"]
    with pytest.raises(ValueError, match="needs a timestamp"):
        Outbox.add(conn, st["id"], json.dumps(st))
    conn.close()


def test_add_many_checks_every_body_before_queueing_any(tmp_path: Path) -> None:
    conn = connect(tmp_path / "m.sqlite3")
    Outbox.install(conn)
    batch = items(3)
    conn.execute("BEGIN IMMEDIATE")
    assert Outbox.add_many(conn, batch[:2]) == 2
    assert Outbox.add_many(conn, batch) == 1  # the first two are queued already
    assert Outbox.add_many(conn, []) == 0
    with pytest.raises(ValueError, match="with this id"):
        Outbox.add_many(conn, [*items(2), ("other-id", batch[0][1])])
    conn.execute("COMMIT")
    assert [i for (i,) in conn.execute("SELECT id FROM sync_outbox ORDER BY seq")] == [i for i, _ in batch]
    conn.close()


def test_pending_order_mark_sent_quarantine_requeue_status(outbox: Outbox) -> None:
    batch = items(7)
    assert outbox.enqueue(batch) == 7 and outbox.enqueue(batch[:2]) == 0
    first = outbox.pending(3)
    assert [i.id for i in first] == [i for i, _ in batch[:3]]
    assert [i.id for i in outbox.pending(3, after=first[-1].seq)] == [i for i, _ in batch[3:6]]
    assert outbox.mark_sent([i.id for i in first]) == 3 and outbox.mark_sent([first[0].id]) == 0
    assert outbox.quarantine(batch[3][0], "LRS answered 409: clash") is True
    st = outbox.status()
    assert st["backlog"] == 3 and st["sent_total"] == 3 and st["quarantined"] == 1
    assert st["quarantine"][0]["id"] == batch[3][0] and st["oldest_unsent_age_s"] is not None
    assert batch[3][0] not in {i.id for i in outbox.pending(10)}
    outbox.note_error("cannot reach the LRS: ClientConnectorError")
    assert outbox.status()["last_error"].startswith("cannot reach")
    outbox.note_success()
    assert outbox.status()["last_error"] is None and outbox.status()["last_success"]
    assert outbox.requeue() == 1 and outbox.status()["backlog"] == 4


def test_status_cli_says_sync_is_off_without_lrs_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "edge.toml"
    toml.write_text(f'[unit]\nstate_dir = "{tmp_path / "state"}"\n')
    assert main(["--config", str(toml), "sync", "status"]) == 0
    out = capsys.readouterr().out
    assert "sync is off: no district.lrs_url" in out and "backlog:         0 statements" in out
    assert main(["--config", str(toml), "sync", "now"]) == 1
    assert "edge: error: sync is off" in capsys.readouterr().err


@pytest.mark.lrs
def test_sync_now_and_status_json(tmp_path: Path, ralph: Any, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    toml = tmp_path / "edge.toml"
    toml.write_text(f'[unit]\nstate_dir = "{state}"\n[district]\nlrs_url = "{ralph.base_url}"\n'
                    f'lrs_user = "edge"\nlrs_password = "edge-test-password"\nbatch_size = 50\n')
    ob = Outbox(state / "mastery" / "mastery.sqlite3")
    ob.enqueue(items(120))
    ob.close()
    assert main(["--config", str(toml), "sync", "now"]) == 0
    assert "sent 120, quarantined 0, backlog 0" in capsys.readouterr().out
    assert main(["--config", str(toml), "sync", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["enabled"] and status["sent_total"] == 120 and status["backlog"] == 0
    assert status["lrs"] == ralph.base_url and "password" not in json.dumps(status)
