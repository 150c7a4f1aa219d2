"""The lesson cache's test harness: a test-controlled upstream server and a cache app, both on 127.0.0.1.

`async def test_*` functions run under `asyncio.run` (the hook in tests/conftest.py), and each test starts
and stops its own servers through `Harness` (an async context manager). The upstream's HTTP semantics
(validators, 304, ranges) are its own small implementation, independent of content_cache.http: a bug there
must not be mirrored on both sides of the test.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from content_cache.server import SERVICE, make_app
from content_cache.service import CacheService
from edge.config import parse_config
from edge.serving.aio import bound_port

LAST_MODIFIED = formatdate(1_700_000_000, usegmt=True)


def _tags(header: str) -> set[str]:
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


def _precondition(request: web.Request, etag: str | None) -> int | None:
    """If-Match (412 unless it names our ETag) and If-None-Match (304 when it does), weak compare for INM."""
    im = request.headers.get("If-Match")
    if im is not None and not (etag and not etag.startswith("W/") and ("*" in _tags(im) or etag in _tags(im))):
        return 412
    inm = request.headers.get("If-None-Match")
    if inm is not None and etag and ("*" in _tags(inm) or etag.removeprefix("W/") in _tags(inm)):
        return 304
    return None


def _one_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end-exclusive) of a single `bytes=` range, None to ignore it, "416" when unsatisfiable."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header or "")
    if m is None or not (m[1] or m[2]):
        return None
    if not m[1]:
        n = int(m[2])
        return (max(0, size - n), size) if n else "416"
    start = int(m[1])
    end = min(size, int(m[2]) + 1) if m[2] else size
    return (start, end) if start < size else "416"



@dataclass
class Obj:
    """One object the upstream serves."""

    body: bytes
    etag: str | None = '"v1"'
    last_modified: str | None = LAST_MODIFIED
    cache_control: str | None = None
    expires: str | None = None
    content_type: str = "application/octet-stream"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()  # more response fields, sent as they are (repeats allowed)
    # (request field, value → body): the body depends on that request field ("" when absent)
    select: tuple[str, dict[str, bytes]] | None = None


@dataclass
class Write:
    """A request with another method than GET/HEAD, as the origin received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Origin:
    """The upstream the tests control: slow, gated, stalling, failing, down, 304s, ranges."""

    objects: dict[str, Obj] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    chunk_size: int = 64 * 1024
    fail_status: int | None = None  # answer every request with this status
    gate: asyncio.Event | None = None  # after the first chunk, wait for this before sending the rest
    stall_after: int | None = None  # send this many bytes, then hang (until the client gives up)
    hold_headers: asyncio.Event | None = None  # wait for this before answering at all
    # Answer other methods than GET/HEAD (else aiohttp's 405): with this status and these fields.
    writable: bool = False
    write_status: int = 200
    write_headers: tuple[tuple[str, str], ...] = ()
    writes: list[Write] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.requests.append((path, dict(request.headers)))
        if self.hold_headers is not None:
            await self.hold_headers.wait()
        if self.fail_status is not None:
            return web.Response(status=self.fail_status, text="upstream trouble")
        obj = self.objects.get(path)
        if obj is None:
            return web.Response(status=404, text="no such lesson")
        headers = {"Content-Type": obj.content_type}
        if obj.etag:
            headers["ETag"] = obj.etag
        if obj.last_modified:
            headers["Last-Modified"] = obj.last_modified
        if obj.cache_control:
            headers["Cache-Control"] = obj.cache_control
        if obj.expires:
            headers["Expires"] = obj.expires
        out = CIMultiDict(headers)
        for name, value in obj.headers:
            out.add(name, value)
        body = obj.body
        if obj.select is not None:
            body = obj.select[1].get(request.headers.get(obj.select[0], ""), b"")
        if obj.status != 200:
            return web.Response(status=obj.status, headers=out, body=body)
        cond = _precondition(request, obj.etag)
        if cond is not None:
            return web.Response(status=cond, headers=out)
        start, end, status = 0, len(body), 200
        wanted = _one_range(request.headers.get("Range"), len(body))
        if wanted == "416":
            return web.Response(status=416)
        if isinstance(wanted, tuple) and request.headers.get("If-Range", obj.etag) == obj.etag:
            (start, end), status = wanted, 206
            out["Content-Range"] = f"bytes {start}-{end - 1}/{len(body)}"
        resp = web.StreamResponse(status=status, headers=out)
        resp.content_length = end - start
        await resp.prepare(request)
        pos, first = start, True
        try:
            while pos < end:
                if self.stall_after is not None and pos - start >= self.stall_after:
                    await asyncio.Event().wait()  # hang: the cache's stall timeout must fire
                n = min(self.chunk_size, end - pos)
                if self.stall_after is not None:
                    n = min(n, start + self.stall_after - pos) or n
                await resp.write(body[pos : pos + n])
                pos += n
                if first and self.gate is not None and status == 200:
                    first = False
                    await self.gate.wait()
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    async def write(self, request: web.Request) -> web.StreamResponse:
        self.writes.append(Write(request.method, request.match_info["path"], dict(request.headers),
                                 await request.read()))
        return web.Response(status=self.write_status, headers=CIMultiDict(self.write_headers), text="written")

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/files/{path:.+}", self.handle)
        if self.writable:
            for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
                app.router.add_route(method, "/files/{path:.+}", self.write)
        # handler_cancellation: a hung (stalling) handler is cancelled when the cache hangs up on it.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = bound_port(self._runner)

    async def stop(self) -> None:
        """Stop listening: from now on the origin is down (connection refused)."""
        if self.gate is not None:
            self.gate.set()
        if self.hold_headers is not None:
            self.hold_headers.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None




@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def x_cache(self) -> str:
        return self.headers.get("X-Cache", "")

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Harness:
    """An upstream Origin plus a cache app configured with it (origin name `up`), and a client."""

    def __init__(self, tmp_path: Path, origin: Origin | None = None, *, origin_settings: dict[str, Any] | None = None,
                 **cache: Any) -> None:
        self.tmp_path = tmp_path
        self.origin = origin or Origin()
        self.origin_settings = origin_settings  # makes `up` a [cache.origins.up] table with these settings
        self.cache_opts = cache
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.session: aiohttp.ClientSession | None = None

    @property
    def svc(self) -> CacheService:
        assert self.runner is not None
        return self.runner.app[SERVICE]

    def config_dict(self) -> dict[str, Any]:
        cache: dict[str, Any] = {
            "dir": str(self.tmp_path / "cache"),
            "stall_timeout_s": 2.0,
            "backoff_s": 30.0,
            "origins": {"up": f"http://127.0.0.1:{self.origin.port}/files"},
        }
        if self.origin_settings is not None:
            cache["origins"] = {"up": {"url": cache["origins"]["up"], **self.origin_settings}}
        cache.update(self.cache_opts)
        return {"cache": cache}

    async def __aenter__(self) -> Harness:
        await self.origin.start()
        await self.start_cache()
        self.session = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def start_cache(self) -> None:
        config = parse_config(self.config_dict(), "test.toml")
        self.runner = web.AppRunner(make_app(config), access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = bound_port(self.runner)

    async def stop_cache(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        await self.stop_cache()
        await self.origin.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def get(self, path: str, headers: dict[str, str] | None = None, method: str = "GET",
                  data: bytes | None = None) -> Reply:
        assert self.session is not None
        async with self.session.request(method, self.url(path), headers=headers or {}, data=data,
                                        allow_redirects=False) as r:
            body = await r.read()
            return Reply(r.status, r.headers, body)

    async def raw(self, target: str) -> int:
        """Send a request target byte-for-byte (clients would normalise `..`); returns the status."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        return int(data.split(b" ", 2)[1])


async def poll(cond: Any, timeout: float = 5.0) -> None:
    """Wait (tiny bounded polls) until cond() is true; fails the test on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def blob(n: int, seed: int = 1) -> bytes:
    """Deterministic incompressible-ish bytes."""
    import hashlib

    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}-{i}".encode()).digest()
        i += 1
    return bytes(out[:n])

