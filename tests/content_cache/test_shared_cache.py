"""The cache as a shared HTTP cache (issue 15): fields passed and stored, the client's request fields forwarded,
Vary, private and cookie responses, statuses, unsafe methods and invalidation, 5xx and back-off, heuristic
freshness and per-origin settings; all against the test-controlled origin on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from content_cache import relay
from tests.content_cache.harness import Harness, Obj, Origin, poll

CORS = (("Access-Control-Allow-Origin", "*"), ("Content-Security-Policy", "default-src 'self'"),
        ("Link", "</h5p.css>; rel=preload; as=style"), ("X-Lesson", "fractions"))


async def test_end_to_end_fields_are_stored_and_passed_with_age(tmp_path: Path) -> None:
    obj = Obj(b"<h5p>", cache_control="max-age=600", content_type="text/html", headers=(
        *CORS, ("Set-Cookie", "lang=de"), ("Set-Cookie", "seen=1"), ("Age", "30"),
        ("Expires", "Thu, 01 Jan 2099 00:00:00 GMT"), ("Date", "Mon, 30 Nov 2026 00:00:00 GMT"),
        ("Connection", "X-Hop"), ("X-Hop", "secret"), ("Vary", "Accept-Encoding")))
    async with Harness(tmp_path, Origin(objects={"a.html": obj})) as h:
        first = await h.get("/up/a.html")
        second = await h.get("/up/a.html")
        assert (first.x_cache, second.x_cache) == ("MISS", "HIT")
        for r in (first, second):
            for name, value in CORS:
                assert r.headers[name] == value
            assert r.headers.getall("Set-Cookie") == ["lang=de", "seen=1"]
            assert r.headers["Expires"] == "Thu, 01 Jan 2099 00:00:00 GMT"
            assert r.headers["Date"] == "Mon, 30 Nov 2026 00:00:00 GMT"  # the origin's Date, never ours
            assert "X-Hop" not in r.headers  # named in Connection: hop-by-hop
        assert first.headers["Age"] == "30"
        # On a hit, Age counts the upstream Age, the time since the Date (apparent age) and the time stored.
        assert int(second.headers["Age"]) >= 30 and len(second.headers.getall("Age")) == 1


async def test_client_request_fields_go_upstream_but_not_the_admin_token(tmp_path: Path) -> None:
    origin = Origin(objects={"a": Obj(b"A", cache_control="max-age=600")})
    async with Harness(tmp_path, origin, admin_token="s3cret") as h:
        await h.get("/up/a", {"X-Experience-API-Version": "1.0.3", "Cookie": "student=7", "Accept-Language": "de",
                              "Authorization": "Bearer s3cret", "If-None-Match": '"v0"', "Range": "bytes=0-0"})
        sent = origin.requests[0][1]
        assert (sent["X-Experience-API-Version"], sent["Cookie"], sent["Accept-Language"]) == ("1.0.3", "student=7",
                                                                                                "de")
        assert "Authorization" not in sent  # the cache's own admin credential never leaves it
        # What the cache evaluates itself on a cached GET (it fetched the whole response to store it).
        assert "If-None-Match" not in sent and "Range" not in sent and sent["Accept-Encoding"] == "identity"
        await h.get("/up/b", {"Authorization": "Bearer for-the-origin"})
        assert origin.requests[1][1]["Authorization"] == "Bearer for-the-origin"


async def test_vary_keeps_one_variant_per_selecting_value(tmp_path: Path) -> None:
    obj = Obj(b"", cache_control="max-age=600", headers=(("Vary", "Accept-Language"),),
              select=("Accept-Language", {"de": b"Hallo", "en": b"Hello", "": b"Hi"}))
    origin = Origin(objects={"l.html": obj}, writable=True)
    async with Harness(tmp_path, origin) as h:
        de, en, none = ({"Accept-Language": "de"}, {"Accept-Language": "en"}, {})
        assert (await h.get("/up/l.html", de)).body == b"Hallo"
        r = await h.get("/up/l.html", en)
        assert (r.x_cache, r.body) == ("MISS", b"Hello")  # another student's variant is never reused
        r = await h.get("/up/l.html", none)
        assert (r.x_cache, r.body) == ("MISS", b"Hi")
        for headers, body in ((de, b"Hallo"), (en, b"Hello"), (none, b"Hi"), ({"Accept-Language": " DE "}, b"Hallo")):
            r = await h.get("/up/l.html", headers)
            assert (r.x_cache, r.body) == ("HIT", body)
        assert origin.count("l.html") == 3
        # An unsafe request to the URL drops every variant.
        assert len(h.svc.store.variants("up/l.html")) == 3
        assert (await h.get("/up/l.html", method="DELETE")).status == 200
        assert h.svc.store.variants("up/l.html") == [] and h.svc.stats.invalidated == 3
        assert (await h.get("/up/l.html", de)).x_cache == "MISS"


async def test_vary_star_is_never_reused(tmp_path: Path) -> None:
    origin = Origin(objects={"a": Obj(b"A", cache_control="max-age=600", headers=(("Vary", "*"),))})
    async with Harness(tmp_path, origin) as h:
        assert [(await h.get("/up/a")).x_cache for _ in range(2)] == ["MISS", "MISS"]
        assert h.svc.store.variants("up/a") == []


async def test_coalescing_is_vary_aware(tmp_path: Path) -> None:
    body = {"de": b"d" * 300_000, "en": b"e" * 300_000}
    obj = Obj(b"", cache_control="max-age=600", headers=(("Vary", "Accept-Language"),),
              select=("Accept-Language", body))
    origin = Origin(objects={"v.bin": obj}, gate=asyncio.Event(), chunk_size=32 * 1024)
    async with Harness(tmp_path, origin) as h:
        langs = ["de", "en", "de", "en", "de", "de"]
        replies = await asyncio.gather(*(h.get("/up/v.bin", {"Accept-Language": lang}) for lang in langs),
                                       _release_after_two(origin))
        for lang, r in zip(langs, replies, strict=False):
            assert r.body == body[lang]  # type: ignore[union-attr]
        assert origin.count("v.bin") == 2  # one upstream request per variant, not one per student


async def _release_after_two(origin: Origin) -> None:
    while origin.count("v.bin") < 1:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.2)  # the other requests arrive meanwhile; the second variant goes out once
    assert origin.gate is not None
    origin.gate.set()


async def test_private_and_personal_responses_are_not_shared(tmp_path: Path) -> None:
    objs = {
        "private": Obj(b"mine", cache_control="private, max-age=600"),
        "cookie": Obj(b"session page", headers=(("Set-Cookie", "session=7"),)),  # heuristic freshness only
        "auth": Obj(b"for student 7", cache_control="max-age=600"),
        "auth-public": Obj(b"for all", cache_control="max-age=600, public"),
    }
    origin = Origin(objects=objs)
    async with Harness(tmp_path, origin) as h:
        for name in ("private", "cookie"):
            assert [(await h.get(f"/up/{name}")).x_cache for _ in range(2)] == ["MISS", "MISS"]
        student = {"Authorization": "Basic c3R1ZGVudDc6cHc="}
        await h.get("/up/auth", student)
        assert (await h.get("/up/auth")).x_cache == "MISS"  # RFC 9111 §3.5
        await h.get("/up/auth-public", student)
        assert (await h.get("/up/auth-public")).x_cache == "HIT"


async def test_private_response_in_flight_is_not_handed_to_other_students(tmp_path: Path) -> None:
    obj = Obj(b"", cache_control="private, max-age=600", select=("Cookie", {"s=1": b"one" * 50_000,
                                                                          "s=2": b"two" * 50_000}))
    origin = Origin(objects={"me": obj}, gate=asyncio.Event(), chunk_size=16 * 1024)
    async with Harness(tmp_path, origin) as h:
        assert h.session is not None and origin.gate is not None
        first = await h.session.get(h.url("/up/me"), headers={"Cookie": "s=1"})
        second = asyncio.create_task(h.get("/up/me", {"Cookie": "s=2"}))
        while origin.count("me") < 2:  # it joined the download, saw `private`, and asked for its own
            await asyncio.sleep(0.005)
        origin.gate.set()
        assert await first.read() == b"one" * 50_000
        first.release()
        assert (await second).body == b"two" * 50_000


async def test_status_codes_are_stored_by_their_rules(tmp_path: Path) -> None:
    objs = {
        "gone": Obj(b"gone for good", status=404, cache_control="max-age=600"),
        "moved": Obj(b"", status=301, cache_control="max-age=600", headers=(("Location", "/files/new.html"),)),
        "made": Obj(b"created", status=201, last_modified="Mon, 01 Jan 2024 00:00:00 GMT"),
        "busy": Obj(b"later", status=503, cache_control="max-age=600"),
    }
    origin = Origin(objects=objs)
    async with Harness(tmp_path, origin) as h:
        for name, status, label in (("gone", 404, "HIT"), ("moved", 301, "HIT"), ("made", 201, "MISS"),
                                    ("busy", 503, "HIT")):
            await h.get(f"/up/{name}")
            await poll(lambda: not h.svc.inflight)  # an empty body reaches the client before the commit
            r = await h.get(f"/up/{name}")
            assert (r.status, r.x_cache, r.body) == (status, label, objs[name].body), name
        # A redirect into the origin points at the cache (the browser stays on it, also offline).
        assert (await h.get("/up/moved")).headers["Location"] == "/up/new.html"


async def test_origin_5xx_passes_through_and_backs_nothing_off(tmp_path: Path) -> None:
    objs = {"a": Obj(b"v1", cache_control="max-age=0"), "b": Obj(b"b1", cache_control="max-age=0")}
    origin = Origin(objects=objs)
    async with Harness(tmp_path, origin) as h:
        await h.get("/up/a")
        await h.get("/up/b")
        origin.objects["a"] = Obj(b"broken", status=500)
        r = await h.get("/up/a")
        assert (r.status, r.body) == (500, b"broken")  # no stale-if-error, no origin setting: the origin's answer
        assert not h.svc.is_down("up")
        assert (await h.get("/up/b")).x_cache == "HIT"  # revalidated (304): other URLs still ask the origin
        assert origin.count("b") == 2


async def test_stale_if_error_and_stale_on_5xx(tmp_path: Path) -> None:
    objs = {"sie": Obj(b"v1", cache_control="max-age=0, stale-if-error=600"), "plain": Obj(b"p1",
            cache_control="max-age=0"), "strict": Obj(b"s1", cache_control="max-age=0, must-revalidate")}
    for settings, plain in (({}, 503), ({"stale_on_5xx": True}, 200)):
        origin = Origin(objects=dict(objs))
        async with Harness(tmp_path / str(plain), origin, origin_settings=settings) as h:
            for name in objs:
                await h.get(f"/up/{name}")
                origin.objects[name] = Obj(b"down for maintenance", status=503)
            r = await h.get("/up/sie")
            assert (r.status, r.x_cache, r.body) == (200, "STALE", b"v1")  # RFC 5861
            assert (await h.get("/up/plain")).status == plain
            assert (await h.get("/up/strict")).status == 503  # must-revalidate: never stale


async def test_unreachable_origin_serves_stale_except_what_must_be_revalidated(tmp_path: Path) -> None:
    objs = {"a": Obj(b"a1", cache_control="max-age=0"), "m": Obj(b"m1", cache_control="max-age=0, must-revalidate"),
            "n": Obj(b"n1", cache_control="no-cache")}
    for settings, strict in (({}, 504), ({"offline_ignores_revalidate": True}, 200)):
        origin = Origin(objects=dict(objs))
        async with Harness(tmp_path / str(strict), origin, origin_settings=settings) as h:
            for name in objs:
                await h.get(f"/up/{name}")
            await origin.stop()
            r = await h.get("/up/a")
            assert (r.status, r.x_cache, r.body) == (200, "STALE", b"a1")
            for name in ("m", "n"):
                assert (await h.get(f"/up/{name}")).status == strict
        origin = Origin(objects=dict(objs))
        async with Harness(tmp_path / "off", origin, origin_settings={"offline_stale": False}) as h:
            await h.get("/up/a")
            await origin.stop()
            assert (await h.get("/up/a")).status == 504


async def test_unsafe_methods_reach_the_origin_and_invalidate(tmp_path: Path) -> None:
    objs = {"quiz": Obj(b"q1", cache_control="max-age=600"), "score": Obj(b"s1", cache_control="max-age=600"),
            "other": Obj(b"o1", cache_control="max-age=600")}
    origin = Origin(objects=objs, writable=True, write_status=201,
                    write_headers=(("Location", "/files/score"), ("X-Saved", "yes")))
    async with Harness(tmp_path, origin, admin_token="s3cret") as h:
        for name in objs:
            await h.get(f"/up/{name}")
        r = await h.get("/up/quiz", {"Content-Type": "application/json", "Cookie": "student=7",
                                     "Authorization": "Bearer s3cret"}, method="POST", data=b'{"a": 3}')
        assert (r.status, r.body, r.headers["X-Saved"], r.headers["Location"]) == (201, b"written", "yes",
                                                                                  "/up/score")
        w = origin.writes[0]
        assert (w.method, w.path, w.body, w.headers["Cookie"]) == ("POST", "quiz", b'{"a": 3}', "student=7")
        assert "Authorization" not in w.headers
        assert (await h.get("/up/quiz")).x_cache == "MISS"  # the request's own URL
        assert (await h.get("/up/score")).x_cache == "MISS"  # its Location, same origin
        assert (await h.get("/up/other")).x_cache == "HIT"
        origin.write_status = 500
        await h.get("/up/other", method="DELETE")
        assert (await h.get("/up/other")).x_cache == "HIT"  # an error answer invalidates nothing
        r = await h.get("/up/other", {"Origin": "https://h5p.example"}, method="OPTIONS")
        assert r.status == 500 and origin.writes[-1].method == "OPTIONS"  # a CORS preflight goes through too
        assert h.svc.stats.invalidated == 2


async def test_request_bodies_are_bounded_and_methods_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "BODY_LIMIT", 1000)
    origin = Origin(writable=True)
    async with Harness(tmp_path, origin) as h:
        r = await h.get("/up/upload", method="PUT", data=b"x" * 1001)
        assert r.status == 413 and r.json()["key"] == "Content-Length"
        assert (await h.get("/up/upload", method="PUT", data=b"x" * 1000)).status == 200

        async def chunked(n: int) -> AsyncIterator[bytes]:  # no Content-Length: counted while relayed
            for _ in range(n):
                yield b"y" * 100

        assert h.session is not None
        async with h.session.post(h.url("/up/upload"), data=chunked(11)) as r:
            assert r.status == 413
        async with h.session.post(h.url("/up/upload"), data=chunked(10)) as r:
            assert r.status == 200
        assert (await h.get("/up/x", method="TRACE")).status == 405
        assert [(w.method, len(w.body)) for w in origin.writes] == [("PUT", 1000), ("POST", 1000)]


async def test_heuristic_freshness_and_a_default_ttl_for_static_packs(tmp_path: Path) -> None:
    objs = {"plain": Obj(b"no validators", etag=None, last_modified=None),
            "dated": Obj(b"last modified a year ago", etag=None, last_modified="Mon, 01 Dec 2025 00:00:00 GMT")}
    origin = Origin(objects=objs)
    async with Harness(tmp_path, origin) as h:
        for name in objs:
            await h.get(f"/up/{name}")
        assert (await h.get("/up/plain")).x_cache == "MISS"  # nothing allows reuse: asked again
        assert (await h.get("/up/dated")).x_cache == "HIT"  # 10% of a year, capped at a day
    origin = Origin(objects=objs)
    async with Harness(tmp_path / "pack", origin, origin_settings={"default_ttl_s": 3600}) as h:
        await h.get("/up/plain")
        assert (await h.get("/up/plain")).x_cache == "HIT"  # the origin is configured as a static pack


async def test_request_cache_directives(tmp_path: Path) -> None:
    origin = Origin(objects={"a": Obj(b"A", cache_control="max-age=600")})
    async with Harness(tmp_path, origin) as h:
        await h.get("/up/a")
        r = await h.get("/up/a", {"Cache-Control": "no-cache"})
        assert r.x_cache == "HIT" and origin.requests[-1][1]["If-None-Match"] == '"v1"'  # validated, then reused
        assert (await h.get("/up/a", {"Cache-Control": "max-age=3600"})).x_cache == "HIT"
        r = await h.get("/up/b", {"Cache-Control": "only-if-cached"})
        assert r.status == 504 and r.json()["key"] == "Cache-Control"
        assert origin.count("b") == 0


async def test_cdn_cache_control_is_obeyed_unless_the_origin_says_not(tmp_path: Path) -> None:
    obj = Obj(b"A", cache_control="no-store", headers=(("CDN-Cache-Control", "max-age=600"),))
    for settings, label in (({}, "HIT"), ({"cdn_cache_control": False}, "MISS")):
        async with Harness(tmp_path / label, Origin(objects={"a": obj}), origin_settings=settings) as h:
            await h.get("/up/a")
            assert (await h.get("/up/a")).x_cache == label


async def test_a_bug_handling_a_response_is_a_502_not_a_stray_task(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The first conformance run found an asctime Expires crashing the download task; waiters got a 504 and the
    task's exception was never retrieved. Any unexpected error now ends the download: logged, a 502 for all."""
    from content_cache import fetch

    def broken(*args: object, **kwargs: object) -> None:
        raise IndexError("no such group")

    origin = Origin(objects={"a": Obj(b"A", expires="Thu Aug  8 02:01:18 2050")})
    async with Harness(tmp_path, origin) as h:
        with monkeypatch.context() as m:
            m.setattr(fetch, "freshness", broken)
            replies = await asyncio.gather(*(h.get("/up/a") for _ in range(3)))
        assert [r.status for r in replies] == [502] * 3 and "could not handle" in replies[0].json()["reason"]
        assert not h.svc.inflight and not h.svc.is_down("up")
        r = await h.get("/up/a")  # and the asctime date itself parses
        assert (r.status, r.x_cache) == (200, "MISS")
        assert (await h.get("/up/a")).x_cache == "HIT"


async def test_a_body_without_content_type_gets_one_from_its_path(tmp_path: Path) -> None:
    """aiohttp would send application/octet-stream (a browser would download the lesson page): the path says
    what it is. The origin is a raw one: aiohttp as an origin adds a Content-Type itself."""
    seen: list[bytes] = []

    async def bare(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        body = b"<h1>Loops</h1>"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nCache-Control: max-age=600\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(bare, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Harness(tmp_path, origins={"up": f"http://127.0.0.1:{port}/files"}) as h:
            for label in ("MISS", "HIT"):
                r = await h.get("/up/lesson.html")
                assert (r.x_cache, r.headers["Content-Type"], r.body) == (label, "text/html", b"<h1>Loops</h1>")
            assert len(seen) == 1
    finally:
        server.close()
        await server.wait_closed()


async def test_a_get_is_sent_again_once_when_the_connection_breaks_before_an_answer(tmp_path: Path) -> None:
    """An idle keep-alive connection the origin closes just as it is reused: the GET goes out once more (aiohttp's
    client does that; a POST it never sends twice), and the origin is not put in back-off."""
    requests: list[bytes] = []

    async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        if len(requests) % 2:  # every other request: hang up without an answer
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n"
                     b"Connection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(flaky, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with Harness(tmp_path, origins={"up": f"http://127.0.0.1:{port}/files"}) as h:
            r = await h.get("/up/a.txt")
            assert (r.status, r.body, len(requests)) == (200, b"ok", 2)
            r = await h.get("/up/form", method="POST", data=b"answer")
            assert r.status == 502 and "broke" in r.json()["reason"] and len(requests) == 3
            assert not h.svc.is_down("up")
    finally:
        server.close()
        await server.wait_closed()
