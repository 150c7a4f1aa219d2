"""Drain a backlog of statements from the outbox to a local Ralph LRS; compare with plain sequential clients.

    python bench/sync_drain.py [N]        (default 200,000; needs .lrs/venv: `python3 tests/sync/lrs.py`)

Peers, each against a fresh, empty Ralph (its fs backend re-reads its whole store on every POST, so a
fuller store is slower: every comparison below is on equal store sizes):
  A. the Uploader draining all N (batch_size 500, 2 requests in flight) — statements/s, time, peak RSS;
  B. a plain sequential client, one statement per POST (what a Chromebook does), on the first 500;
  C. a plain sequential client with the same 500-statement batches, one request at a time, on the first
     20,000, against the Uploader on the same 20,000.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.config import DistrictConfig  # noqa: E402
from edge.sync.outbox import Outbox  # noqa: E402
from edge.sync.uploader import Uploader  # noqa: E402
from tests.sync.lrs import PASSWORD, USER, Ralph  # noqa: E402

BATCH = 500
SAMPLE_ONE_BY_ONE = 500
SAMPLE_BATCHED = 20_000


def body(i: int) -> tuple[str, str]:
    sid = str(uuid.UUID(int=(0xB0B << 100) + i, version=4))
    st = {
        "id": sid,
        "actor": {"objectType": "Agent", "account": {"homePage": "https://sis.example.org", "name": f"stu-{i % 600}"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"objectType": "Activity", "id": f"https://lessons.example.org/unit{i % 12}/q{i % 40}"},
        "result": {"success": i % 3 != 0, "duration": "PT42S"},
        "context": {"extensions": {"https://w3id.org/xapi/classroom-edge/extensions/skill": f"skill-{i % 25}"}},
        "timestamp": f"2026-03-{1 + i // 86400 % 28:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
    }
    return sid, json.dumps(st, separators=(",", ":"))


def fill(outbox: Outbox, n: int) -> None:
    for start in range(0, n, 10_000):
        outbox.enqueue(body(i) for i in range(start, min(n, start + 10_000)))


def count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def drain(outbox: Outbox, ralph: Ralph) -> float:
    district = DistrictConfig(lrs_url=ralph.base_url, lrs_user=USER, lrs_password=PASSWORD, batch_size=BATCH)
    up = Uploader(outbox, district, concurrency=2)
    t0 = time.perf_counter()
    try:
        result = await up.run_round()
    finally:
        await up.close()
    if not result.ok:
        raise SystemExit(f"drain failed: {result.error}")
    return time.perf_counter() - t0


def sequential(ralph: Ralph, bodies: list[str], per_request: int) -> float:
    """A plain client: one keep-alive connection, one request at a time."""
    conn = http.client.HTTPConnection("127.0.0.1", ralph.port, timeout=120)
    headers = {"Authorization": ralph.auth, "X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}
    t0 = time.perf_counter()
    for i in range(0, len(bodies), per_request):
        conn.request("POST", "/xAPI/statements", body="[" + ",".join(bodies[i : i + per_request]) + "]",
                     headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status not in (200, 204):
            raise SystemExit(f"sequential client: {resp.status}")
    conn.close()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 200_000
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        work = Path(tmp)
        outbox = Outbox(work / "outbox.sqlite3")
        t = time.perf_counter()
        fill(outbox, n)
        print(f"backlog: {n:,} statements queued in {time.perf_counter() - t:.1f} s")
        rss_before = rss_mb()

        ralph = Ralph(work / "a").start()
        try:
            t_all = asyncio.run(drain(outbox, ralph))
            rss_drain = rss_mb()  # before the check below reads Ralph's file
            held = count_lines(ralph.data_dir / "fs_lrs.jsonl")
        finally:
            ralph.stop()
        if held != n or outbox.status()["backlog"] != 0:
            raise SystemExit(f"drain incomplete: LRS holds {held}, backlog {outbox.status()['backlog']}")
        print(f"A  uploader:        {n:,} statements in {t_all:.1f} s = {n / t_all:,.0f} statements/s "
              f"(peak RSS {rss_drain:.0f} MB; {rss_before:.0f} MB before the drain)")

        bodies = [body(i)[1] for i in range(SAMPLE_BATCHED)]
        ralph = Ralph(work / "b").start()
        try:
            t_one = sequential(ralph, bodies[:SAMPLE_ONE_BY_ONE], 1)
        finally:
            ralph.stop()
        r_one = SAMPLE_ONE_BY_ONE / t_one
        print(f"B  sequential, 1 statement per POST, first {SAMPLE_ONE_BY_ONE:,}: {r_one:,.0f} statements/s")

        ralph = Ralph(work / "c").start()
        try:
            t_seq = sequential(ralph, bodies, BATCH)
        finally:
            ralph.stop()
        small = Outbox(work / "small.sqlite3")
        fill(small, SAMPLE_BATCHED)
        ralph = Ralph(work / "d").start()
        try:
            t_up = asyncio.run(drain(small, ralph))
        finally:
            ralph.stop()
        r_seq, r_up = SAMPLE_BATCHED / t_seq, SAMPLE_BATCHED / t_up
        print(f"C  sequential, {BATCH}-statement batches, first {SAMPLE_BATCHED:,}: {r_seq:,.0f} statements/s; "
              f"uploader on the same: {r_up:,.0f} statements/s")
        print(f"ratio uploader (all {n:,}) / sequential one-by-one: {n / t_all / r_one:.1f}x")
        print(f"ratio uploader / sequential batched (same {SAMPLE_BATCHED:,}, same batches): {r_up / r_seq:.2f}x")
        print("note: Ralph's fs backend scans its whole store on every POST, so the drain rate falls as the "
              "store grows; the one-by-one peer is measured on an almost empty store (its best case).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
