"""A fault-injecting HTTP proxy in front of the LRS, on its own thread and event loop.

Each request takes the next fault from the script (then `default`):
  "pass"    forward unchanged
  "drop"    close the connection without an answer (nothing reaches the LRS)
  "delay:S" wait S seconds, then forward (the client's timeout may fire first)
  "500"     answer 500 (nothing reaches the LRS)
  "503:S"   answer 503 with Retry-After: S
  "cut"     forward (the LRS stores the batch), then cut the answer mid-body
  "409"     answer 409 without forwarding
`gzip=True` advertises `Accept-Encoding: gzip` (RFC 7694) and passes gzipped bodies on inflated.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

import aiohttp
from aiohttp import web

from tests.net import free_port


class FaultProxy:
    def __init__(self, upstream: str, *, gzip: bool = False) -> None:
        self.upstream = upstream.rstrip("/")  # e.g. http://127.0.0.1:PORT (no path)
        self.port = free_port()
        self.script: deque[str] = deque()
        self.default = "pass"
        self.gzip = gzip
        self.log: list[tuple[str, int, str]] = []  # (fault, body bytes received, content-encoding)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def faults(self, *items: str, default: str | None = None) -> None:
        self.script.extend(items)
        if default is not None:
            self.default = default

    def start(self) -> FaultProxy:
        self._loop.set_exception_handler(lambda loop, context: None)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=256 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        # No exception may leave the handler: aiohttp would log it with a traceback, and formatting a
        # traceback on this thread (ast.parse for the carets) while the main thread compiles trips CPython
        # 3.11's "AST constructor recursion depth mismatch" (gh-106905).
        try:
            return await self._fault(request)
        except Exception:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=599)

    async def _fault(self, request: web.Request) -> web.StreamResponse:
        fault = self.script.popleft() if self.script else self.default
        body = await request.read()
        enc = request.headers.get("Content-Encoding", "")
        self.log.append((fault, len(body), enc))
        extra = {"Accept-Encoding": "gzip"} if self.gzip else {}
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=599)  # never written: the connection is gone
        if fault == "500":
            return web.json_response({"detail": "injected"}, status=500, headers=extra)
        if fault.startswith("503:"):
            return web.json_response({"detail": "busy"}, status=503, headers={"Retry-After": fault[4:], **extra})
        if fault == "409":
            return web.json_response({"detail": "injected conflict"}, status=409, headers=extra)
        if fault.startswith("delay:"):
            await asyncio.sleep(float(fault[6:]))
        if enc == "gzip" and not self.gzip:
            return web.json_response({"detail": "unsupported content encoding"}, status=415)
        # (aiohttp's server has already inflated a gzipped body: `body` is plain JSON here)
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "content-encoding", "transfer-encoding")}
        assert self._session is not None
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                         headers=headers) as up:
            payload = await up.read()
            status = up.status
            ctype = up.headers.get("Content-Type", "application/json")
        if fault == "cut":
            resp = web.StreamResponse(status=200 if status == 204 else status, headers={"Content-Type": ctype, **extra})
            resp.content_length = len(payload) + 100
            await resp.prepare(request)
            await resp.write(payload[: max(1, len(payload) // 2)])
            assert request.transport is not None
            request.transport.abort()
            return resp
        return web.Response(status=status, body=payload, headers={"Content-Type": ctype, **extra})
