"""SIGKILL fault campaign: the intake+sync process is killed ≥50 times at random (seeded) moments while it
stores, acknowledges and uploads statements; afterwards the LRS holds every acknowledged statement exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from edge.sync.outbox import Outbox
from tests.sync.faultproxy import FaultProxy
from tests.sync.lrs import ROOT, Ralph

pytestmark = pytest.mark.lrs
KILLS = 55
SEED = 6_2026


def spawn(db: Path, acked: Path, url: str, seed: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sync.campaign_worker", str(db), str(acked), url, str(seed), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_sigkill_campaign_loses_and_duplicates_nothing(tmp_path: Path, ralph: Ralph) -> None:
    # A slow, sometimes failing link, so kills also land while batches are in flight or half-answered.
    proxy = FaultProxy(f"http://127.0.0.1:{ralph.port}").start()
    rng = random.Random(SEED)
    proxy.faults(*rng.choices(["pass"] * 6 + ["cut", "500", "delay:0.15"], k=2000))
    db, acked = tmp_path / "state" / "mastery.sqlite3", tmp_path / "acked.log"
    url = proxy.url + "/xAPI"
    kills = 0
    try:
        for run in range(KILLS):
            proc = spawn(db, acked, url, SEED + run)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                proc.wait(5)
                raise AssertionError(f"worker did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(rng.uniform(0.02, 0.35))
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
            assert proc.returncode == -signal.SIGKILL
            kills += 1
        proxy.script.clear()
        final = spawn(db, acked, url, 0, "--drain")
        _out, err = final.communicate(timeout=60)
        assert final.returncode == 0, err[-2000:]
    finally:
        proxy.stop()
    assert kills >= 50
    acknowledged = acked.read_text().split()
    assert len(acknowledged) > 1000 and len(set(acknowledged)) == len(acknowledged)
    in_lrs = Counter(ralph.statement_ids())
    assert not [i for i in acknowledged if i not in in_lrs], "acknowledged statements missing at the LRS"
    assert max(in_lrs.values()) == 1, "duplicates returned by the LRS"
    stored = Counter(s["id"] for s in ralph.stored_lines())
    assert max(stored.values()) == 1 and set(stored) == set(in_lrs)
    ob = Outbox(db)
    try:
        committed = {r[0] for r in ob.db.execute("SELECT id FROM statements")}
        assert set(in_lrs) <= committed  # nothing that was not committed reached the LRS
        assert ob.status()["backlog"] == 0 and ob.status()["quarantined"] == 0
    finally:
        ob.close()
