"""Intake benchmark: 36 concurrent Chromebook clients POST batches of 50 xAPI statements.

The service runs in its own process (as on the Pi) on a temporary state directory; clients run here with
aiohttp. Prints statements/s, latency percentiles, and checks that every acknowledged statement is in the
SQLite store after the service stopped (durability, not just speed).
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.config import EdgeConfig, parse_config
from edge.xapi import SKILL_EXTENSION

CLIENTS, BATCH, BATCHES_PER_CLIENT = 36, 50, 20
PACED_PERIOD_S, PACED_BATCHES = 0.5, 10  # paced phase: 36 x 50 / 0.5 s = 3,600 statements/s offered
KEY = "bench-key"
HEADERS = {"Authorization": "Basic " + base64.b64encode(f"class:{KEY}".encode()).decode(),
           "X-Experience-API-Version": "1.0.3"}


def _serve(config: EdgeConfig) -> None:
    from edge.mastery.app import serve

    serve(config)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _statement(client: int, n: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"account": {"homePage": "https://school.example", "name": f"student-{client}"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": f"https://lessons.example/q{n % 40}"},
        "result": {"success": (client + n) % 3 != 0},
        "context": {"extensions": {SKILL_EXTENSION: f"skill-{n % 12}"}},
        "timestamp": f"2024-05-01T10:{(n // 60) % 60:02d}:{n % 60:02d}Z",
    }


async def _client(session: aiohttp.ClientSession, url: str, client: int, latencies: list[float],
                  batches: int, period: float = 0.0, first: int = 0) -> int:
    """POST `batches` batches back to back (period 0) or one every `period` seconds from a staggered start.

    `first`: the student's answers so far; later answers carry later timestamps, as in a lesson. (Evidence older
    than the cell's newest is replayed from its history: correct, and much dearer; the paced phase once restarted
    the clock and measured only that.)"""
    sent = 0
    start = time.perf_counter() + period * client / CLIENTS
    for b in range(batches):
        batch = [_statement(client, first + b * BATCH + i) for i in range(BATCH)]
        if period:
            await asyncio.sleep(max(0.0, start + b * period - time.perf_counter()))
        t0 = time.perf_counter()
        async with session.post(url, json=batch, headers=HEADERS) as r:
            ids = await r.json()
            if r.status != 200 or len(ids) != BATCH:
                raise RuntimeError(f"POST failed: {r.status} {ids}")
        latencies.append(time.perf_counter() - t0)
        sent += BATCH
    return sent


Phase = tuple[int, float, list[float]]


async def _load(base: str) -> tuple[Phase, Phase]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
        for _ in range(200):  # wait for the service to listen
            try:
                async with session.get(f"{base}/api/v1/mastery?skill=x", headers=HEADERS) as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        phases = []
        first = 0
        for batches, period in ((BATCHES_PER_CLIENT, 0.0), (PACED_BATCHES, PACED_PERIOD_S)):
            latencies: list[float] = []
            t0 = time.perf_counter()
            counts = await asyncio.gather(*(_client(session, f"{base}/xapi/statements", c, latencies, batches,
                                                    period, first) for c in range(CLIENTS)))
            first += batches * BATCH
            phases.append((sum(counts), time.perf_counter() - t0, sorted(latencies)))
        return phases[0], phases[1]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="edge-intake-bench-") as tmp:
        port = _free_port()
        config = parse_config({"unit": {"state_dir": tmp},
                               "mastery": {"host": "127.0.0.1", "port": port, "class_key": KEY}})
        proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(config,))
        proc.start()
        try:
            saturated, paced = asyncio.run(_load(f"http://127.0.0.1:{port}"))
        finally:
            proc.terminate()  # SIGTERM: the service shuts down cleanly
            proc.join(30)

        db = sqlite3.connect(Path(tmp) / "mastery" / "mastery.sqlite3")
        stored = db.execute("SELECT count(*) FROM statements").fetchone()[0]
        evidence = db.execute("SELECT count(*) FROM evidence").fetchone()[0]
        db.close()
    print(f"intake: {CLIENTS} concurrent clients POSTing batches of {BATCH} xAPI statements "
          f"(service in its own process, SQLite WAL synchronous=FULL, group commit)")
    print(f"{'phase':<34} {'statements':>10} {'seconds':>8} {'statements/s':>13} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7}")
    names = (f"saturated ({BATCHES_PER_CLIENT} back-to-back each)",
             f"paced (1 batch / {PACED_PERIOD_S} s each)")
    for name, (total, secs, lat) in zip(names, (saturated, paced), strict=True):
        def pct(q: float, lat: list[float] = lat) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

        print(f"{name:<34} {total:>10,} {secs:>8.2f} {total / secs:>13,.0f} {pct(0.50):>7.1f} {pct(0.99):>7.1f} "
              f"{lat[-1] * 1000:>7.1f}")
    acked = saturated[0] + paced[0]
    print(f"durable: {stored:,} statements and {evidence:,} evidence rows in SQLite after shutdown "
          f"({'all' if stored == acked else 'MISSING ' + str(acked - stored)} of {acked:,} acknowledged)")
    print("saturated latency is queueing (Little's law: 36 x 50 in flight / throughput)")
    print("goal: >= 3,000 statements/s with p99 < 100 ms, every one durable")


if __name__ == "__main__":
    main()
