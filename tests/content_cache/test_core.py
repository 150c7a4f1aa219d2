"""Core: origins and paths, miss → hit, coalescing with streaming, stalls, down upstream, crash safety."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import aiohttp
import pytest

from content_cache.paths import TargetError, resolve_target
from content_cache.store import Store
from tests.content_cache.harness import Harness, Obj, Origin, blob, poll
from tests.net import free_port

ORIGINS = {"up": "http://example.test/base", "pack": "file:///srv/pack"}


@pytest.mark.parametrize("target", [
    "/up/../etc/passwd", "/up/a/../../x", "/up/%2e%2e/x", "/up/%2E%2E/x", "/up/a%2fb", "/up/a%5cb",
    "/up//etc/passwd", "/up/./x", "/up/%00x", "/up/%ff",
])
def test_traversal_is_refused(target: str) -> None:
    with pytest.raises(TargetError) as e:
        resolve_target(target, ORIGINS)
    assert e.value.status == 400


def test_unknown_origin_is_404_and_urls_are_reencoded() -> None:
    with pytest.raises(TargetError) as e:
        resolve_target("/evil.example.com/x", ORIGINS)
    assert e.value.status == 404
    t = resolve_target("/up/lessons/a%20b.html?v=2", ORIGINS)
    assert t.url == "http://example.test/base/lessons/a%20b.html?v=2"
    assert t.key == "up/lessons/a b.html?v=2"
    assert resolve_target("/pack/dir/", ORIGINS).url == "file:///srv/pack/dir/index.html"


async def test_refusals_over_http_are_json(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        for target in ("/up/../x", "/up/%2e%2e/secret", "/up/a%2f..%2f..%2fb", "/up//etc/passwd"):
            assert await h.raw(target) == 400, target
        r = await h.get("/http%3A%2F%2Fevil.example/x")
        assert r.status == 404 and "unknown origin" in r.json()["error"]
        r = await h.get("/nowhere/x")
        assert r.status == 404 and r.headers["Content-Type"].startswith("application/json")
        r = await h.get("/up/x", method="POST")
        assert r.status == 405
        assert h.origin.requests == []


async def test_miss_then_hit_passes_validators(tmp_path: Path) -> None:
    origin = Origin(objects={"lesson.html": Obj(b"<h1>Fractions</h1>", content_type="text/html")})
    async with Harness(tmp_path, origin) as h:
        first = await h.get("/up/lesson.html")
        second = await h.get("/up/lesson.html")
        assert (first.status, first.x_cache, first.body) == (200, "MISS", b"<h1>Fractions</h1>")
        assert (second.status, second.x_cache, second.body) == (200, "HIT", b"<h1>Fractions</h1>")
        for r in (first, second):
            assert r.headers["ETag"] == '"v1"'
            assert r.headers["Last-Modified"] == origin.objects["lesson.html"].last_modified
            assert r.headers["Content-Type"].startswith("text/html")
        assert origin.count("lesson.html") == 1
        assert origin.requests[0][1].get("Accept-Encoding") == "identity"
        missing = await h.get("/up/nothing.html")
        assert missing.status == 404 and h.svc.store.get("up/nothing.html") is None


async def test_coalescing_streams_one_download_to_every_client(tmp_path: Path) -> None:
    body = blob(1_000_000)
    origin = Origin(objects={"video.mp4": Obj(body)}, gate=asyncio.Event(), chunk_size=32 * 1024)
    async with Harness(tmp_path, origin) as h:
        assert h.session is not None
        tasks = [asyncio.create_task(h.session.get(h.url("/up/video.mp4"))) for _ in range(12)]
        responses = await asyncio.gather(*tasks)
        # Every client has its first bytes while upstream is still held after its first chunk: streaming.
        firsts = [await r.content.readexactly(1000) for r in responses]
        assert not origin.gate.is_set()  # type: ignore[union-attr]
        origin.gate.set()  # type: ignore[union-attr]
        rests = [await r.read() for r in responses]
        labels = sorted(r.headers["X-Cache"] for r in responses)
        for r in responses:
            r.release()
        assert all(f + rest == body for f, rest in zip(firsts, rests, strict=True))
        assert origin.count("video.mp4") == 1
        assert labels == ["COALESCED"] * 11 + ["MISS"]
        assert (await h.get("/up/video.mp4")).x_cache == "HIT"
        assert h.svc.stats.coalesced == 11


async def test_download_finishes_when_the_first_client_leaves(tmp_path: Path) -> None:
    body = blob(600_000)
    origin = Origin(objects={"v.bin": Obj(body)}, gate=asyncio.Event())
    async with Harness(tmp_path, origin) as h:
        assert h.session is not None
        r = await h.session.get(h.url("/up/v.bin"))
        await r.content.readexactly(100)
        r.close()  # the student closes the tab
        origin.gate.set()  # type: ignore[union-attr]
        await poll(lambda: h.svc.store.get("up/v.bin") is not None)
        again = await h.get("/up/v.bin")
        assert (again.x_cache, again.body) == ("HIT", body)
        assert origin.count("v.bin") == 1


async def test_upstream_stall_is_a_clear_error_and_nothing_is_kept(tmp_path: Path) -> None:
    origin = Origin(objects={"v.bin": Obj(blob(300_000))}, stall_after=100_000)
    async with Harness(tmp_path, origin, stall_timeout_s=0.3) as h:
        assert h.session is not None
        async with h.session.get(h.url("/up/v.bin")) as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        assert h.svc.store.get("up/v.bin") is None
        assert "stalled" in h.svc.health["up"].last_error
        assert list((tmp_path / "cache" / "tmp").iterdir()) == []
        # The next request (upstream still stalling) finds no half file to serve either.
        origin.stall_after = 0
        async with h.session.get(h.url("/up/v.bin")) as r2:
            with pytest.raises(aiohttp.ClientPayloadError):
                await r2.read()


async def test_uncached_object_with_upstream_down_is_504_json(tmp_path: Path) -> None:
    async with Harness(tmp_path) as h:
        await h.origin.stop()
        r = await h.get("/up/lesson.html")
        assert r.status == 504
        assert "unavailable" in r.json()["error"] and r.json()["status"] == 504


async def test_upstream_5xx_is_passed_through_as_it_is(tmp_path: Path) -> None:
    """Issue 15 replaced the old rewrite of an origin 5xx into a 502 of the cache's own: the origin's status and
    body reach the client, and one URL's 5xx does not put the origin in back-off."""
    async with Harness(tmp_path, Origin(fail_status=503)) as h:
        r = await h.get("/up/lesson.html")
        assert (r.status, r.body, r.x_cache) == (503, b"upstream trouble", "MISS")
        assert not h.svc.is_down("up") and h.svc.store.get("up/lesson.html") is None
        assert (await h.get("/up/lesson.html")).status == 503
        assert h.origin.count("lesson.html") == 2


async def test_an_invalid_upstream_response_is_502_json(tmp_path: Path) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Harness(tmp_path, origins={"up": f"http://127.0.0.1:{port}/files"}) as h:
            r = await h.get("/up/lesson.html")
            assert r.status == 502 and r.json()["status"] == 502 and "invalid response" in r.json()["reason"]
            assert not h.svc.is_down("up")  # the origin answered: no back-off for everything else
    finally:
        server.close()
        await server.wait_closed()


def test_store_check_repairs_orphans_and_bad_entries(tmp_path: Path) -> None:
    store = Store(tmp_path)
    (store.tmp / "999999999.dead.part").write_bytes(b"half")
    (store.bodies / "ab").mkdir()
    (store.bodies / "ab" / "orphan.1").write_bytes(b"nobody indexes me")
    report = store.check()
    assert report.temp_files == ["999999999.dead.part"]
    assert report.orphan_bodies == ["ab/orphan.1"]
    store.close()


CRASH_SERVER = textwrap.dedent("""
    import asyncio, sys
    from aiohttp import web
    from content_cache.server import make_app
    from edge.config import parse_config

    async def main():
        cfg = parse_config({"cache": {"dir": sys.argv[1], "port": int(sys.argv[3]), "host": "127.0.0.1",
                                      "origins": {"up": sys.argv[2]}}}, "crash.toml")
        runner = web.AppRunner(make_app(cfg))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(sys.argv[3])).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
""")


async def test_kill_mid_download_restart_serves_nothing_half(tmp_path: Path) -> None:
    body = blob(2_000_000)
    origin = Origin(objects={"v.bin": Obj(body)}, gate=asyncio.Event())
    await origin.start()
    port = free_port()
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASH_SERVER, str(cache_dir), f"http://127.0.0.1:{origin.port}/files", str(port),
        stdout=subprocess.PIPE, env=env,
    )
    try:
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).strip() == b"ready"
        async with aiohttp.ClientSession() as s:
            r = await s.get(f"http://127.0.0.1:{port}/up/v.bin")
            await r.content.readexactly(1000)  # the download is under way, half a file in tmp/
            assert list((cache_dir / "tmp").iterdir())
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            r.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    origin.gate.set()  # type: ignore[union-attr]
    h = Harness(tmp_path, origin)
    await h.start_cache()  # restart on the same directory
    try:
        assert h.svc.store.get("up/v.bin") is None
        assert list((cache_dir / "tmp").iterdir()) == []
        h.session = aiohttp.ClientSession()
        r2 = await h.get("/up/v.bin")
        assert (r2.status, r2.x_cache, r2.body) == (200, "MISS", body)
    finally:
        await h.__aexit__()


def test_stores_sharing_a_dir_never_write_back_an_old_version(tmp_path: Path) -> None:
    """Two worker processes' stores: a stale in-memory copy must not overwrite the other's newer commit."""
    import dataclasses

    from content_cache.store import Entry

    a, b = Store(tmp_path), Store(tmp_path)

    def commit(store: Store, data: bytes) -> Entry:
        tmp = store.new_temp()
        tmp.write_bytes(data)
        entry = Entry(key="up/x", url="http://o/x", origin="up", body=store.body_name("up/x"), size=len(data),
                      sha256="0" * 64, fetched_at=0.0, fresh_until=0.0)
        store.commit(tmp, entry)
        return entry

    old = commit(a, b"old")
    assert b.get("up/x") is not None and b.get("up/x").body == old.body  # type: ignore[union-attr]
    new = commit(b, b"newer")
    assert not (tmp_path / "bodies" / old.body).exists()  # b removed the body a had indexed
    a.touch(old)
    a.flush_access()  # a's copy is outdated: the index keeps b's version
    assert a.reload("up/x") == dataclasses.replace(new, last_access=a.reload("up/x").last_access)  # type: ignore[union-attr]
    b.update(dataclasses.replace(new, pinned=True))
    a.sync()
    assert a.get("up/x").pinned and a.total_bytes == len(b"newer")  # type: ignore[union-attr]
    b.remove("up/x")
    a.sync()
    assert a.get("up/x") is None and a.total_bytes == 0
    a.close()
    b.close()


def test_a_stale_plain_entry_removed_by_one_process_leaves_anothers_variants(tmp_path: Path) -> None:
    """Worker A still mirrors a URL's plain entry; worker B stores a Vary variant (its VarySet replaces the plain
    entry at the URL key). A finds the old body gone and removes its entry: B's VarySet and variant stay."""
    from multidict import CIMultiDict

    from content_cache.store import Entry, variant_key

    a, b = Store(tmp_path), Store(tmp_path)

    def commit(store: Store, key: str, data: bytes, vary: tuple[str, ...] = ()) -> Entry:
        tmp = store.new_temp()
        tmp.write_bytes(data)
        entry = Entry(key=key, url="http://o/x", origin="up", body=store.body_name(key), size=len(data),
                      sha256="0" * 64, fetched_at=0.0, fresh_until=0.0, vary=vary)
        store.commit(tmp, entry)
        return entry

    commit(a, "up/x", b"plain")
    de = CIMultiDict({"Accept-Language": "de"})
    key = variant_key("up/x", ("accept-language",), de)
    commit(b, key, b"Hallo", ("accept-language",))
    assert a.in_memory("up/x") is not None  # A's mirror is behind
    a.remove("up/x")  # what serving does when the body it knew is gone
    a.sync()
    assert a.lookup("up/x", de) is not None and a.lookup("up/x", de).key == key  # type: ignore[union-attr]
    b.sync()
    assert [e.key for e in b.variants("up/x")] == [key]
    a.close()
    b.close()


async def test_a_client_chosen_over_long_file_name_is_414_and_the_pack_stays_healthy(tmp_path: Path) -> None:
    """A name longer than the pack's file system allows is the client's error: 414, never a 504 that would
    mark the origin down in /_cache/health for IT (issue 11); the pack keeps serving."""
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "ok.html").write_bytes(b"<p>ok</p>")
    async with Harness(tmp_path, origins={"pack": f"file://{pack}"}) as h:
        for name in ("a" * 300 + ".html", "d" * 256 + "/x.html"):
            r = await h.get(f"/pack/{name}")
            assert r.status == 414 and r.json()["error"], (name, r.status)
        r = await h.get("/_cache/health")
        assert r.status == 200 and r.json()["upstreams_down"] == []
        r = await h.get("/pack/ok.html")
        assert r.status == 200 and r.body == b"<p>ok</p>"
