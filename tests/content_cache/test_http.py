"""HTTP semantics (RFC 9110): ranges, conditionals, If-Range, multi-range, ranges on downloads in progress."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from content_cache.http import Unsatisfiable, check_conditionals, freshness, if_range_allows, parse_range
from tests.content_cache.harness import LAST_MODIFIED, Harness, Obj, Origin, blob

BODY = blob(10_000)


def test_parse_range() -> None:
    assert parse_range("bytes=0-", 100) == [(0, 100)]
    assert parse_range("bytes=-10", 100) == [(90, 100)]
    assert parse_range("bytes=-1000", 100) == [(0, 100)]
    assert parse_range("bytes=10-19", 100) == [(10, 20)]
    assert parse_range("bytes=90-500", 100) == [(90, 100)]
    assert parse_range("bytes=0-9, 20-29", 100) == [(0, 10), (20, 30)]
    assert parse_range("bytes=0-9,5-20", 100) is None  # overlapping: whole 200
    assert parse_range("items=0-9", 100) is None
    assert parse_range("bytes=9-0", 100) is None
    assert parse_range("bytes=abc", 100) is None
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=100-", 100)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-0", 100)


def test_conditionals_and_if_range() -> None:
    assert check_conditionals({"If-None-Match": '"a", "b"'}, '"b"', None) == 304
    assert check_conditionals({"If-None-Match": 'W/"b"'}, '"b"', None) == 304
    assert check_conditionals({"If-None-Match": '"c"'}, '"b"', None) is None
    assert check_conditionals({"If-Match": '"c"'}, '"b"', None) == 412
    assert check_conditionals({"If-Modified-Since": LAST_MODIFIED}, None, 1_700_000_000.0) == 304
    assert check_conditionals({"If-Modified-Since": LAST_MODIFIED}, None, 1_700_000_001.0) is None
    assert if_range_allows({"If-Range": '"b"'}, '"b"', None)
    assert not if_range_allows({"If-Range": 'W/"b"'}, 'W/"b"', None)  # weak never matches If-Range
    assert not if_range_allows({"If-Range": '"a"'}, '"b"', None)
    assert if_range_allows({"If-Range": LAST_MODIFIED}, None, 1_700_000_000.0)


def test_freshness_rules() -> None:
    f = freshness({"Cache-Control": "max-age=60, stale-while-revalidate=30"}, 3600, now=1000.0)
    assert (f.store, f.fresh_until, f.swr_s) == (True, 1060.0, 30.0)
    assert freshness({"Cache-Control": "s-maxage=5, max-age=60"}, 3600, now=0.0).fresh_until == 5.0
    assert freshness({}, 3600, now=0.0).fresh_until == 3600.0
    assert not freshness({"Cache-Control": "no-store"}, 3600).store
    assert not freshness({"Cache-Control": "private, max-age=9"}, 3600).store
    e = freshness({"Expires": "Thu, 01 Jan 1970 00:01:40 GMT", "Date": "Thu, 01 Jan 1970 00:00:40 GMT"}, 3600,
                  now=500.0)
    # 60 s of freshness (Expires − Date), but received 460 s after its Date: RFC 9111 §4.2.3 counts that apparent
    # age (issue 15), so it went stale at 100 (this line said 560 before the cache computed Age per the RFC).
    assert e.fresh_until == 100.0
    assert freshness({"Expires": "garbage"}, 3600, now=5.0).fresh_until == 5.0
    assert freshness({"Cache-Control": "max-age=10, must-revalidate"}, 0).sie_s == 0.0


async def _warm(h: Harness, path: str = "/up/clip.bin") -> None:
    r = await h.get(path)
    assert r.status == 200 and r.body == BODY


@pytest.mark.parametrize("warm", [True, False], ids=["hit", "miss"])
async def test_ranges(tmp_path: Path, warm: bool) -> None:
    async with Harness(tmp_path, Origin(objects={"clip.bin": Obj(BODY)})) as h:
        if warm:
            await _warm(h)
        r = await h.get("/up/clip.bin", {"Range": "bytes=0-"})  # what Chrome's <video> asks first
        assert (r.status, r.body, r.headers["Content-Range"]) == (206, BODY, f"bytes 0-9999/{len(BODY)}")
        assert r.headers["Accept-Ranges"] == "bytes"
        r = await h.get("/up/clip.bin", {"Range": "bytes=-100"})
        assert (r.status, r.body) == (206, BODY[-100:])
        r = await h.get("/up/clip.bin", {"Range": "bytes=10-19"})
        assert (r.status, r.body, r.headers["Content-Range"]) == (206, BODY[10:20], "bytes 10-19/10000")
        r = await h.get("/up/clip.bin", {"Range": "bytes=10000-"})
        assert (r.status, r.headers["Content-Range"]) == (416, "bytes */10000")
        assert r.json()["error"] == "range not satisfiable"
        assert h.origin.count("clip.bin") == 1


async def test_conditionals_on_hits(tmp_path: Path) -> None:
    async with Harness(tmp_path, Origin(objects={"clip.bin": Obj(BODY)})) as h:
        await _warm(h)
        r = await h.get("/up/clip.bin", {"If-None-Match": '"v1"'})
        assert (r.status, r.body, r.headers["ETag"]) == (304, b"", '"v1"')
        r = await h.get("/up/clip.bin", {"If-Modified-Since": LAST_MODIFIED})
        assert r.status == 304
        r = await h.get("/up/clip.bin", {"If-None-Match": '"old"'})
        assert (r.status, r.body) == (200, BODY)
        r = await h.get("/up/clip.bin", {"If-Match": '"old"'})
        assert r.status == 412


async def test_if_range(tmp_path: Path) -> None:
    async with Harness(tmp_path, Origin(objects={"clip.bin": Obj(BODY)})) as h:
        await _warm(h)
        r = await h.get("/up/clip.bin", {"Range": "bytes=0-9", "If-Range": '"v0-changed"'})
        assert (r.status, r.body) == (200, BODY)  # aiohttp's FileResponse would answer 206 here
        r = await h.get("/up/clip.bin", {"Range": "bytes=0-9", "If-Range": '"v1"'})
        assert (r.status, r.body) == (206, BODY[:10])
        r = await h.get("/up/clip.bin", {"Range": "bytes=0-9", "If-Range": LAST_MODIFIED})
        assert r.status == 206


async def test_multi_range_is_multipart(tmp_path: Path) -> None:
    async with Harness(tmp_path, Origin(objects={"clip.bin": Obj(BODY, content_type="video/mp4")})) as h:
        await _warm(h)
        r = await h.get("/up/clip.bin", {"Range": "bytes=0-9,100-109,-5"})
        assert r.status == 206
        ctype = r.headers["Content-Type"]
        assert ctype.startswith("multipart/byteranges; boundary=")
        boundary = ctype.split("boundary=")[1].encode()
        parts = [p for p in r.body.split(b"--" + boundary) if p.strip() not in (b"", b"--")]
        assert len(parts) == 3
        got = []
        for p in parts:
            head, _, data = p.partition(b"\r\n\r\n")
            assert b"Content-Type: video/mp4" in head
            got.append((head.split(b"Content-Range: ")[1].split(b"\r\n")[0], data[:-2]))
        assert got == [(b"bytes 0-9/10000", BODY[:10]), (b"bytes 100-109/10000", BODY[100:110]),
                       (b"bytes 9995-9999/10000", BODY[-5:])]
        assert int(r.headers["Content-Length"]) == len(r.body)


async def test_head(tmp_path: Path) -> None:
    async with Harness(tmp_path, Origin(objects={"clip.bin": Obj(BODY)})) as h:
        await _warm(h)
        r = await h.get("/up/clip.bin", method="HEAD")
        assert (r.status, r.body, r.headers["Content-Length"]) == (200, b"", "10000")


async def test_ranges_on_a_download_in_progress(tmp_path: Path) -> None:
    big = blob(8_000_000)
    origin = Origin(objects={"movie.bin": Obj(big)}, gate=asyncio.Event(), chunk_size=64 * 1024)
    async with Harness(tmp_path, origin) as h:
        assert h.session is not None and origin.gate is not None
        first = await h.session.get(h.url("/up/movie.bin"))
        await first.content.readexactly(1000)
        # Bytes already there: answered from the growing file while upstream is still held.
        near = await h.get("/up/movie.bin", {"Range": "bytes=0-999"})
        assert (near.status, near.body, near.x_cache) == (206, big[:1000], "COALESCED")
        # A far seek: fetched from upstream as a range, not cached, while the full download continues.
        far = await h.get("/up/movie.bin", {"Range": "bytes=7000000-7000099"})
        assert (far.status, far.body) == (206, big[7_000_000:7_000_100])
        assert far.headers["Content-Range"] == "bytes 7000000-7000099/8000000"
        range_reqs = [hd for p, hd in origin.requests if p == "movie.bin" and "Range" in hd]
        assert [hd["Range"] for hd in range_reqs] == ["bytes=7000000-7000099"]
        assert range_reqs[0]["If-Range"] == '"v1"'
        origin.gate.set()
        assert await first.content.read() == big[1000:]
        first.release()
        hit = await h.get("/up/movie.bin", {"Range": "bytes=7000000-7000099"})
        assert (hit.status, hit.x_cache, hit.body) == (206, "HIT", big[7_000_000:7_000_100])
        assert h.svc.store.get("up/movie.bin") is not None
        assert h.svc.store.get("up/movie.bin").size == len(big)  # type: ignore[union-attr]
