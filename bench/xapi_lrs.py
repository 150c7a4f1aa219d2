"""The mastery service as an xAPI LRS against Ralph (a real LRS, run here in the same script), a class of
36 concurrent clients per operation: POST batches, single PUTs, a statement query followed through `more`,
and State PUT/GET (Ralph implements only statements: those rows have no peer).

Both run on 127.0.0.1 in their own processes, each on a fresh store (ours: SQLite WAL, synchronous=FULL;
Ralph: its fs backend, as tests/sync runs it). Prints statements (or requests) per second and p99 latency
for each, and our rate / Ralph's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.config import EdgeConfig, parse_config  # noqa: E402
from tests.net import free_port  # noqa: E402
from tests.sync.lrs import PASSWORD, USER, Ralph  # noqa: E402

CLIENTS, BATCH = 36, 20
BATCHES, PUTS, STATES, QUERIES = 5, 10, 20, 5  # per client
KEY = "bench-key"
HOME = "https://school.example"
Op = Callable[[aiohttp.ClientSession, str, int, int], Awaitable[int]]


def _serve(config: EdgeConfig) -> None:
    from edge.mastery.app import serve

    serve(config)


def _statement(client: int, n: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": f"student-{client}"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}},
        "object": {"objectType": "Activity", "id": f"https://lessons.example/q{n % 40}",
                   "definition": {"name": {"en-US": f"Question {n % 40}"}}},
        "result": {"success": (client + n) % 3 != 0, "duration": "PT12S"},
        "context": {"registration": str(uuid.uuid5(uuid.NAMESPACE_URL, f"reg-{client}"))},
        "timestamp": f"2026-05-01T10:{(n // 60) % 60:02d}:{n % 60:02d}Z",
    }


async def _check(r: aiohttp.ClientResponse, *ok: int) -> None:
    if r.status not in ok:
        raise RuntimeError(f"{r.method} {r.url.path}: {r.status} {(await r.text())[:200]}")


async def post_batches(s: aiohttp.ClientSession, base: str, client: int, i: int) -> int:
    async with s.post(f"{base}/statements", json=[_statement(client, i * BATCH + k) for k in range(BATCH)]) as r:
        await _check(r, 200)
    return BATCH


async def put_single(s: aiohttp.ClientSession, base: str, client: int, i: int) -> int:
    st = _statement(client, 1000 + i)
    async with s.put(f"{base}/statements?statementId={st.pop('id')}", json=st) as r:
        await _check(r, 204)
    return 1


async def query_more(s: aiohttp.ClientSession, base: str, client: int, i: int) -> int:
    """One student's statements, 10 a page, following `more` to the end: counts the statements read."""
    agent = json.dumps({"objectType": "Agent", "account": {"homePage": HOME, "name": f"student-{client}"}})
    url: str | None = f"{base}/statements?" + urlencode({"agent": agent, "limit": 10})
    read = 0
    origin = base[: base.index("/", 8)]
    while url:
        async with s.get(url) as r:
            await _check(r, 200)
            doc = await r.json()
        read += len(doc["statements"])
        more = doc.get("more") or ""
        url = origin + more if more.startswith("/") else more or None
    return read


def state_op(method: str) -> Op:
    async def op(s: aiohttp.ClientSession, base: str, client: int, i: int) -> int:
        params = urlencode({"activityId": "https://lessons.example/q1", "stateId": f"resume-{i % 5}",
                            "agent": json.dumps({"account": {"homePage": HOME, "name": f"student-{client}"}})})
        if method == "PUT":
            async with s.put(f"{base}/activities/state?{params}", json={"page": i, "answers": [1, 2, 3]}) as r:
                await _check(r, 204)
        else:
            async with s.get(f"{base}/activities/state?{params}") as r:
                await _check(r, 200)
                await r.read()
        return 1

    return op


async def run_op(base: str, auth: str, op: Op, per_client: int) -> tuple[float, float]:
    """(items per second, p99 request latency in ms) with CLIENTS clients doing `per_client` requests each."""
    headers = {"Authorization": auth, "X-Experience-API-Version": "1.0.3"}
    latencies: list[float] = []
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=300),
                                     connector=aiohttp.TCPConnector(limit=CLIENTS)) as s:
        async def client(c: int) -> int:
            n = 0
            for i in range(per_client):
                t0 = time.perf_counter()
                n += await op(s, base, c, i)
                latencies.append(time.perf_counter() - t0)
            return n

        t0 = time.perf_counter()
        total = sum(await asyncio.gather(*(client(c) for c in range(CLIENTS))))
        secs = time.perf_counter() - t0
    latencies.sort()
    return total / secs, latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000


async def wait_up(base: str, auth: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(f"{base}/statements?limit=1", headers={
                        "Authorization": auth, "X-Experience-API-Version": "1.0.3"}) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{base} did not come up")


OPS: list[tuple[str, Op, int, bool]] = [  # (name, operation, requests per client, Ralph has it)
    (f"POST batches of {BATCH} (statements/s)", post_batches, BATCHES, True),
    ("PUT ?statementId, one each (statements/s)", put_single, PUTS, True),
    ("query one student, 10 a page + more (statements/s)", query_more, QUERIES, True),
    ("State PUT (documents/s)", state_op("PUT"), STATES, False),
    ("State GET (documents/s)", state_op("GET"), STATES, False),
]


def main() -> None:
    results: dict[str, dict[str, tuple[float, float]]] = {"edge": {}, "ralph": {}}
    with tempfile.TemporaryDirectory(prefix="edge-xapi-bench-") as tmp:
        port = free_port()
        config = parse_config({"unit": {"state_dir": tmp},
                               "mastery": {"host": "127.0.0.1", "port": port, "class_key": KEY}})
        proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(config,))
        proc.start()
        ralph = Ralph(Path(tmp) / "ralph").start()
        try:
            peers = {"edge": (f"http://127.0.0.1:{port}/xapi", "Basic " + base64.b64encode(
                f"class:{KEY}".encode()).decode()),
                     "ralph": (ralph.base_url, "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())}
            for name, op, per_client, both in OPS:
                for peer, (base, auth) in peers.items():
                    if peer == "ralph" and not both:
                        continue
                    asyncio.run(wait_up(base, auth))
                    results[peer][name] = asyncio.run(run_op(base, auth, op, per_client))
        finally:
            ralph.stop()
            proc.terminate()
            proc.join(30)
    print(f"xAPI LRS: {CLIENTS} concurrent clients per operation; edge = mastery service (SQLite WAL, "
          f"synchronous=FULL), peer = Ralph 5.1 (fs backend), same machine, same run")
    print(f"{'operation':<52} {'edge/s':>9} {'p99 ms':>8} {'ralph/s':>9} {'p99 ms':>8} {'ratio':>7}")
    for name, _, _, both in OPS:
        rate, p99 = results["edge"][name]
        if both:
            r_rate, r_p99 = results["ralph"][name]
            print(f"{name:<52} {rate:>9,.0f} {p99:>8.1f} {r_rate:>9,.0f} {r_p99:>8.1f} {rate / r_rate:>6.1f}x")
        else:
            print(f"{name:<52} {rate:>9,.0f} {p99:>8.1f} {'-':>9} {'-':>8} {'n/a':>7}  (Ralph has no State API)")


if __name__ == "__main__":
    main()
