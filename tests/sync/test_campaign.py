"""SIGKILL fault campaign on the real mastery service (`edge mastery serve`: xAPI intake + district sync).

A client posts statements and records every id the service acknowledged (HTTP 200) while the service uploads
to a real LRS through a faulty link; the service's process group is SIGKILLed at random (seeded) moments,
at least 50 times. After a last clean start drains the backlog, the LRS holds every acknowledged statement
exactly once.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.net import free_port, wait_listening
from tests.sync.faultproxy import FaultProxy
from tests.sync.helpers import statement
from tests.sync.lrs import PASSWORD, ROOT, USER, Ralph

pytestmark = pytest.mark.lrs
KILLS = 55
SEED = 6_2026
KEY = "campaign-key"
HEADERS = {"Authorization": "Basic " + base64.b64encode(f"class:{KEY}".encode()).decode(),
           "X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}


def write_config(tmp_path: Path, port: int, lrs_url: str) -> Path:
    cfg = tmp_path / "edge.toml"
    cfg.write_text(
        f'[unit]\nstate_dir = "{tmp_path}/state"\n'
        f'[mastery]\nhost = "127.0.0.1"\nport = {port}\nclass_key = "{KEY}"\n'
        f'[district]\nlrs_url = "{lrs_url}"\nlrs_user = "{USER}"\nlrs_password = "{PASSWORD}"\n'
        'batch_size = 50\nsync_interval_s = 0.05\n')
    return cfg


def spawn(cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "edge", "mastery", "serve", "--config", str(cfg)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)




class Client(threading.Thread):
    """Posts batches of 1–10 statements, a Chromebook class's pace; an id counts as acknowledged only on a 200."""

    def __init__(self, port: int, rng: random.Random, acked: list[str]) -> None:
        super().__init__(daemon=True)
        self.port, self.rng, self.acked = port, rng, acked
        self.stop = threading.Event()
        self.n = 0

    def run(self) -> None:
        while not self.stop.is_set():
            batch = []
            for _ in range(self.rng.randint(1, 10)):
                st = statement(self.n)
                st["id"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
                batch.append(st)
                self.n += 1
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("POST", "/xapi/statements", body=json.dumps(batch), headers=HEADERS)
                resp = conn.getresponse()
                if resp.status == 200:
                    assert json.loads(resp.read()) == [s["id"] for s in batch]
                    self.acked.extend(s["id"] for s in batch)
            except (OSError, http.client.HTTPException):
                time.sleep(0.01)  # the service is being killed or restarted
            finally:
                conn.close()
            self.stop.wait(self.rng.uniform(0.0, 0.03))


def sync_status(port: int) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/v1/sync", headers=HEADERS)
        resp = conn.getresponse()
        assert resp.status == 200
        status: dict[str, object] = json.loads(resp.read())
        return status
    finally:
        conn.close()


def test_sigkill_campaign_loses_and_duplicates_nothing(tmp_path: Path, ralph: Ralph) -> None:
    # A slow, sometimes failing link, so kills also land while batches are in flight or half-answered.
    proxy = FaultProxy(f"http://127.0.0.1:{ralph.port}").start()
    rng = random.Random(SEED)
    proxy.faults(*rng.choices(["pass"] * 6 + ["cut", "500", "delay:0.15"], k=3000))
    port = free_port()
    cfg = write_config(tmp_path, port, proxy.url + "/xAPI")
    acked: list[str] = []
    kills = 0
    try:
        for _ in range(KILLS):
            proc = spawn(cfg)
            try:
                wait_listening(port, proc)
                client = Client(port, random.Random(rng.getrandbits(32)), acked)
                client.start()
                time.sleep(rng.uniform(0.05, 0.4))
                os.killpg(proc.pid, signal.SIGKILL)
                assert proc.wait(10) == -signal.SIGKILL
                kills += 1
                client.stop.set()
                client.join(10)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        print(f"\ncampaign: {kills} kills, {len(acked)} acknowledged; draining", flush=True)
        proxy.script.clear()
        final = spawn(cfg)
        try:
            wait_listening(port, final)
            deadline = time.monotonic() + 90
            while (status := sync_status(port))["backlog"] != 0:
                assert time.monotonic() < deadline, f"backlog not drained: {status}"
                time.sleep(0.2)
            assert status["quarantined"] == 0
            final.send_signal(signal.SIGTERM)
            assert final.wait(30) == 0
        finally:
            if final.poll() is None:
                os.killpg(final.pid, signal.SIGKILL)
                final.wait(10)
    finally:
        proxy.stop()
    assert kills >= 50
    assert len(acked) > 300 and len(set(acked)) == len(acked)
    in_lrs = Counter(ralph.statement_ids())
    missing = [i for i in acked if i not in in_lrs]
    assert not missing, f"{len(missing)} acknowledged statements missing at the LRS"
    assert max(in_lrs.values()) == 1, "duplicates returned by the LRS"
    stored = Counter(s["id"] for s in ralph.stored_lines())
    assert max(stored.values()) == 1 and set(stored) == set(in_lrs)
