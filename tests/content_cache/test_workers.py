"""`workers = N`: real worker processes on one port, one upstream download per object across all of them.

Connections are pinned to a worker before the test sends the interesting requests: each keep-alive
connection first asks `/_cache/health`, which says which worker answered, so the spread over workers is
chosen, not left to the kernel's hashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from content_cache.store import Store
from tests.content_cache.harness import Obj, Origin, blob, poll
from tests.net import free_port

AUTH = "Bearer w0rkers"


class Conn:
    """One keep-alive HTTP/1.1 connection (raw, so the test knows which worker it is talking to)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.worker = -1

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        conn = cls(reader, writer)
        conn.worker = int((await conn.get_json("/_cache/health"))["worker"])
        return conn

    async def start(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        """Send a GET and read the status and headers (the body is left to read)."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        fields = dict(line.split(": ", 1) for line in head[1:] if line)
        return status, {k.lower(): v for k, v in fields.items()}

    async def get_json(self, path: str, headers: dict[str, str] | None = None) -> Any:
        _, h = await self.start(path, headers)
        return json.loads(await self.reader.readexactly(int(h["content-length"])))

    async def read_to_end(self, n: int) -> bytes:
        """Read up to n more bytes; fewer when the server cuts the connection (a truncated body)."""
        out = b""
        while len(out) < n:
            data = await self.reader.read(n - len(out))
            if not data:
                break
            out += data
        return out

    def close(self) -> None:
        self.writer.close()


class Pool:
    """`edge cache serve` with workers = N in a subprocess, and the upstream Origin it fetches from."""

    def __init__(self, tmp_path: Path, origin: Origin, workers: int) -> None:
        self.tmp_path = tmp_path
        self.origin = origin
        self.workers = workers
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.conns: list[Conn] = []

    async def start(self) -> None:
        await self.origin.start()
        cfg = self.tmp_path / "edge.toml"
        cfg.write_text(
            f'[cache]\nhost = "127.0.0.1"\nport = {self.port}\nworkers = {self.workers}\n'
            f'dir = "{self.tmp_path / "cache"}"\nadmin_token = "w0rkers"\nstall_timeout_s = 5.0\n'
            f'[cache.origins]\nup = "http://127.0.0.1:{self.origin.port}/files"\n'
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge", "cache", "serve", "--config", str(cfg),
            stdout=subprocess.PIPE, env=env,
        )
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        assert b"serving on" in line and f"{self.workers} worker processes".encode() in line, line

    async def pinned(self, per_worker: int) -> dict[int, list[Conn]]:
        """`per_worker` open connections on each worker (connections to surplus workers are closed)."""
        got: dict[int, list[Conn]] = {i: [] for i in range(self.workers)}
        for _ in range(400):
            if all(len(c) >= per_worker for c in got.values()):
                return got
            conn = await Conn.open(self.port)
            if len(got[conn.worker]) < per_worker:
                got[conn.worker].append(conn)
                self.conns.append(conn)
            else:
                conn.close()
        raise AssertionError(f"connections did not reach every worker: {[len(c) for c in got.values()]}")

    async def stop(self) -> int | None:
        for conn in self.conns:
            conn.close()
        rc = None
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = await asyncio.wait_for(self.proc.wait(), 12)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self.origin.stop()
        return rc


@contextlib.asynccontextmanager
async def running(tmp_path: Path, origin: Origin, workers: int = 2) -> AsyncIterator[Pool]:
    pool = Pool(tmp_path, origin, workers)
    try:
        await pool.start()
        yield pool
    finally:
        await pool.stop()


async def test_concurrent_cold_requests_across_workers_make_one_upstream_request(tmp_path: Path) -> None:
    body = blob(1_000_000, seed=7)
    origin = Origin(objects={"video.mp4": Obj(body)}, gate=asyncio.Event(), chunk_size=32 * 1024)
    async with running(tmp_path, origin) as pool:
        conns = await pool.pinned(per_worker=3)
        clients = [c for group in conns.values() for c in group]
        heads = await asyncio.gather(*(c.start("/up/video.mp4") for c in clients))
        assert all(status == 200 for status, _ in heads)
        assert all(int(h["content-length"]) == len(body) for _, h in heads)
        # Upstream is held after its first chunk: every client, in every worker, already streams bytes.
        firsts = await asyncio.gather(*(c.reader.readexactly(1000) for c in clients))
        assert not origin.gate.is_set()  # type: ignore[union-attr]
        origin.gate.set()  # type: ignore[union-attr]
        rests = await asyncio.gather(*(c.reader.readexactly(len(body) - 1000) for c in clients))
        assert all(f + r == body for f, r in zip(firsts, rests, strict=True))
        assert origin.count("video.mp4") == 1
        assert sorted(h["x-cache"] for _, h in heads) == ["COALESCED"] * 5 + ["MISS"]
        for group in conns.values():  # and then a hit in every worker, from the one committed body
            status, h = await group[0].start("/up/video.mp4")
            assert (status, h["x-cache"]) == (200, "HIT")
            assert await group[0].reader.readexactly(len(body)) == body
        assert origin.count("video.mp4") == 1
        # Whichever worker answers, the stats cover the whole cache (others' figures: about a second old).
        stats = await stats_until(conns, lambda s: s["upstream_requests"] == 1 and s["misses"] + s["coalesced"] == 6
                                  and s["hits"] == 2)
        assert sorted(s["worker"] for s in stats) == [0, 1]
        for s in stats:
            per = {w["worker"]: w for w in s["workers"]}
            assert sorted(per) == [0, 1] and len({w["pid"] for w in per.values()}) == 2
            assert sum(w["upstream_requests"] for w in per.values()) == 1
            assert [per[i]["hits"] for i in (0, 1)] == [1, 1]
            assert s["objects"] == 1 and s["upstreams"]["up"]["healthy"] is True
        # Upstream goes down; worker 0 finds out. Worker 1's stats say so too, naming who backs off.
        await origin.stop()
        status, h = await conns[0][0].start("/up/other.bin")
        assert status == 504
        await conns[0][0].reader.readexactly(int(h["content-length"]))
        s1 = (await stats_until({1: conns[1]}, lambda s: not s["upstreams"]["up"]["healthy"]))[0]
        assert s1["worker"] == 1 and s1["upstreams"]["up"]["down_in_workers"] == [0]
        assert "unreachable" in s1["upstreams"]["up"]["last_error"] and s1["upstreams"]["up"]["failures"] == 1
        assert [w["upstreams"].get("up", {}).get("healthy", True) for w in s1["workers"]] == [False, True]
        assert await pool.stop() == 0  # SIGTERM stops every worker cleanly
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    # Each download took a lock file; once nobody holds them, the repair removes them (and dead counters).
    locks = tmp_path / "cache" / "locks"
    assert len(list(locks.glob("*.lock"))) == 2
    store = Store(tmp_path / "cache")
    try:
        report = store.check()
    finally:
        store.close()
    assert (report.lock_files, report.stats_files, report.entries) == (2, 2, 1)
    assert list(locks.iterdir()) == [] and list((tmp_path / "cache" / "stats").iterdir()) == []


async def stats_until(conns: dict[int, list[Conn]], cond: Any, timeout: float = 5.0) -> list[Any]:
    """/_cache/stats from one connection per worker, asked again until `cond` holds for every answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        stats = [await group[0].get_json("/_cache/stats", {"Authorization": AUTH}) for group in conns.values()]
        if all(cond(s) for s in stats):
            return stats
        if loop.time() > deadline:
            raise AssertionError(f"stats did not converge: {stats}")
        await asyncio.sleep(0.05)


async def test_a_worker_killed_mid_download_is_taken_over(tmp_path: Path) -> None:
    body = blob(1_500_000, seed=8)
    origin = Origin(objects={"v.bin": Obj(body)}, gate=asyncio.Event(), chunk_size=32 * 1024)
    async with running(tmp_path, origin) as pool:
        conns = await pool.pinned(per_worker=1)
        leader, follower = conns[0][0], conns[1][0]
        leader_pid = (await leader.get_json("/_cache/stats", {"Authorization": AUTH}))["pid"]
        _, h1 = await leader.start("/up/v.bin")
        assert h1["x-cache"] == "MISS"
        await leader.reader.readexactly(1000)  # worker 0 downloads; upstream holds after the first chunk
        _, h2 = await follower.start("/up/v.bin")
        assert h2["x-cache"] == "COALESCED"
        got = await follower.reader.readexactly(1000)  # worker 1 streams worker 0's temp file
        assert origin.count("v.bin") == 1
        os.kill(leader_pid, signal.SIGKILL)  # the downloading worker dies mid-download
        # Its client gets a truncated body, never a short one passed off as whole.
        assert len(await leader.read_to_end(len(body))) < len(body) - 1000
        await poll(lambda: origin.count("v.bin") == 2)  # worker 1 took the lock over and fetches again
        # ... only the rest: a Range request from where the dead worker's temp file ends, If-Range its ETag.
        resume = origin.requests[-1][1]
        assert resume["If-Range"] == '"v1"' and resume["Range"].startswith("bytes=")
        offset = int(resume["Range"][len("bytes="):].rstrip("-"))
        assert 1000 <= offset < len(body) and resume["Range"] == f"bytes={offset}-"
        origin.gate.set()  # type: ignore[union-attr]
        got += await follower.reader.readexactly(len(body) - 1000)
        assert got == body  # same representation (strong ETag, length): the client never noticed
        assert origin.count("v.bin") == 2
        s = await follower.get_json("/_cache/stats", {"Authorization": AUTH})
        assert s["resumed"] == 1 and s["bytes_fetched"] == len(body) - offset
        status, h = await follower.start("/up/v.bin")
        assert (status, h["x-cache"]) == (200, "HIT")
        assert await follower.reader.readexactly(len(body)) == body
        # The parent starts a new worker 0, which serves the committed body without going upstream.
        fresh: list[Conn] = []
        for _ in range(400):
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                conn = await Conn.open(pool.port)
                pool.conns.append(conn)
                if conn.worker == 0:
                    fresh.append(conn)
                    break
            await asyncio.sleep(0.01)
        assert fresh, "worker 0 was not restarted"
        status, h = await fresh[0].start("/up/v.bin")
        assert (status, h["x-cache"]) == (200, "HIT")
        assert await fresh[0].reader.readexactly(len(body)) == body
        assert origin.count("v.bin") == 2
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


async def test_a_takeover_downloads_whole_when_the_object_changed(tmp_path: Path) -> None:
    body, new = blob(1_500_000, seed=9), blob(900_000, seed=10)
    origin = Origin(objects={"v.bin": Obj(body)}, gate=asyncio.Event(), chunk_size=32 * 1024)
    async with running(tmp_path, origin) as pool:
        conns = await pool.pinned(per_worker=1)
        leader, follower = conns[0][0], conns[1][0]
        leader_pid = (await leader.get_json("/_cache/stats", {"Authorization": AUTH}))["pid"]
        await leader.start("/up/v.bin")
        await leader.reader.readexactly(1000)
        _, h2 = await follower.start("/up/v.bin")
        assert h2["x-cache"] == "COALESCED"
        await follower.reader.readexactly(1000)
        origin.objects["v.bin"] = Obj(new, etag='"v2"')  # a new version upstream, then the leader dies
        os.kill(leader_pid, signal.SIGKILL)
        await poll(lambda: origin.count("v.bin") == 2)
        assert origin.requests[-1][1]["If-Range"] == '"v1"'  # tried to resume; If-Range made it a 200
        origin.gate.set()  # type: ignore[union-attr]
        # The follower's client was promised v1: it gets a truncated body, never a v1/v2 mix passed off as whole.
        assert len(await follower.read_to_end(len(body))) < len(body) - 1000
        conn = await Conn.open(pool.port)
        pool.conns.append(conn)
        for _ in range(200):
            status, h = await conn.start("/up/v.bin")
            got = await conn.reader.readexactly(int(h["content-length"]))
            if h["x-cache"] == "HIT":
                break
            await asyncio.sleep(0.02)
        assert (status, h["x-cache"], h["etag"], got) == (200, "HIT", '"v2"', new)
        assert origin.count("v.bin") == 2
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


@pytest.mark.parametrize("workers", [0, -1])
def test_workers_must_be_positive(workers: int) -> None:
    from edge.config import parse_config
    from edge.exc import ConfigError

    with pytest.raises(ConfigError, match="workers"):
        parse_config({"cache": {"workers": workers}}, "t.toml")


async def test_coalescing_across_workers_is_per_vary_variant(tmp_path: Path) -> None:
    body = {"de": blob(400_000, seed=11), "en": blob(400_000, seed=12)}
    obj = Obj(b"", cache_control="max-age=600", headers=(("Vary", "Accept-Language"),),
              select=("Accept-Language", body))
    origin = Origin(objects={"v.bin": obj}, gate=asyncio.Event(), chunk_size=32 * 1024)
    async with running(tmp_path, origin) as pool:
        conns = await pool.pinned(per_worker=2)
        # The first student's request finds out the URL varies; then both languages from both workers.
        first = conns[0][0]
        await first.start("/up/v.bin", {"Accept-Language": "de"})
        await poll(lambda: origin.count("v.bin") == 1)
        asks = [(conns[1][0], "de"), (conns[0][1], "en"), (conns[1][1], "en")]
        heads = await asyncio.gather(*(c.start("/up/v.bin", {"Accept-Language": lang}) for c, lang in asks))
        await poll(lambda: origin.count("v.bin") == 2)  # the English variant: one more request, not two
        origin.gate.set()  # type: ignore[union-attr]
        assert await first.reader.readexactly(len(body["de"])) == body["de"]
        for (conn, lang), (status, head) in zip(asks, heads, strict=True):
            assert status == 200
            assert await conn.reader.readexactly(int(head["content-length"])) == body[lang]
        assert origin.count("v.bin") == 2
        assert sorted(head["x-cache"] for _, head in heads) == ["COALESCED", "COALESCED", "MISS"]
        for group in conns.values():  # and then hits, each worker, each language
            for conn, lang in zip(group, ("de", "en"), strict=True):
                status, head = await conn.start("/up/v.bin", {"Accept-Language": lang})
                assert (status, head["x-cache"]) == (200, "HIT")
                assert await conn.reader.readexactly(len(body[lang])) == body[lang]
        assert origin.count("v.bin") == 2
