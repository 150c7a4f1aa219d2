"""The aiohttp side: `GET /<origin>/<path>` answered from the store, a growing download, or upstream.

Hits go out with sendfile through a `web.FileResponse` subclass whose preconditions and ranges we decide
ourselves (aiohttp's own ignore ETag If-Range, refuse multi-range and replace upstream's ETag).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import logging
import mimetypes
import os
import secrets
import socket
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from content_cache.admin import add_admin_routes
from content_cache.demo import ensure_demo_pack
from content_cache.http import (
    Unsatisfiable,
    check_conditionals,
    http_date,
    if_range_allows,
    is_strong,
    parse_http_date,
    parse_range,
)
from content_cache.paths import Target, TargetError, resolve_target
from content_cache.service import CacheService, Download
from content_cache.store import Entry
from content_cache.upstream import UpstreamError
from content_cache.workerstats import PUBLISH_INTERVAL_S
from edge.config import EdgeConfig

log = logging.getLogger(__name__)

SERVICE: web.AppKey[CacheService] = web.AppKey("content_cache.service", CacheService)
CHUNK = 256 * 1024
NEAR_SEEK = 2 * 1024 * 1024  # a range starting within this of what has arrived waits for the download
ACCESS_FLUSH_S = 30.0
TARGET_MEMO = 8192  # resolved request targets remembered per process
# Request headers that make a hit more than "send the whole body": checked once, parsed only if present.
_CONDITIONAL = ("Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    """Every refusal is JSON naming the problem (the appliance-wide rule for bad input)."""
    return web.json_response({"error": message, "status": status, **extra}, status=status)


class CachedFileResponse(web.StreamResponse):
    """A committed body (an open fd) or a range of it, sent with sendfile(2).

    Not `web.FileResponse`: that one builds a `pathlib.Path`, decides preconditions and ranges itself (it
    ignores ETag If-Range and refuses multi-range) and goes through `loop.sendfile` even when the whole body
    fits into the socket buffer. Here one non-blocking `os.sendfile` usually sends a small body at once; only
    what does not fit goes through `loop.sendfile` (zero-copy too), which waits for the socket.
    """

    def __init__(self, fd: int, offset: int, count: int, status: int, headers: dict[str, str]) -> None:
        super().__init__(status=status, headers=headers)
        self._fd = fd
        self._offset = offset
        self._count = count
        self.content_length = count

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return self._payload_writer
        fd = self._fd
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        corked = False
        try:
            if sock is not None and request.method != "HEAD" and self._count:
                # Cork: the header block and the body leave in full segments instead of a header packet first.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                    corked = True
            writer = await super().prepare(request)
            if request.method == "HEAD" or not self._count:
                return writer
            if transport is None or sock is None or transport.is_closing():
                raise ConnectionResetError("connection lost")
            offset, count = self._offset, self._count
            if not transport.get_write_buffer_size():
                # Nothing queued in the transport (the headers went out): write to the socket directly.
                try:
                    out = sock.fileno()
                    while count:
                        sent = os.sendfile(out, fd, offset, count)
                        if not sent:
                            raise ConnectionResetError("body shrank")  # cannot happen for committed bodies
                        offset += sent
                        count -= sent
                except BlockingIOError:
                    pass  # the socket buffer is full: the rest waits for the loop
                except (BrokenPipeError, ConnectionError) as e:
                    raise ConnectionResetError(str(e)) from None
            if corked:  # headers and the first buffer-full are out together; don't hold back the rest
                corked = False
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            if count:
                with open(fd, "rb", buffering=0, closefd=False) as fobj:
                    await request._loop.sendfile(transport, fobj, offset, count)
            await super().write_eof()
            return writer
        finally:
            os.close(fd)
            if corked and sock is not None and transport is not None and not transport.is_closing():
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


@functools.lru_cache(maxsize=4096)
def _guess_type(key: str) -> str:
    return mimetypes.guess_type(key.split("?", 1)[0])[0] or "application/octet-stream"


def _base_headers(etag: str | None, last_modified: str | None, content_type: str | None, key: str,
                  label: str) -> dict[str, str]:
    h = {"X-Cache": label, "Accept-Ranges": "bytes"}
    if etag:
        h["ETag"] = etag
    if last_modified:
        h["Last-Modified"] = last_modified
    h["Content-Type"] = content_type or _guess_type(key)
    return h


def _precondition_response(status: int, headers: dict[str, str]) -> web.Response:
    keep = {k: v for k, v in headers.items() if k in ("ETag", "Last-Modified", "X-Cache", "Cache-Control")}
    return web.Response(status=status, headers=keep)


class Handlers:
    """Request handlers bound to one CacheService."""

    def __init__(self, svc: CacheService) -> None:
        self.svc = svc
        self._targets: dict[str, Target] = {}

    # -- entry point -----------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        """A tiny page listing origins, so someone opening the unit in a browser finds the lessons."""
        items = "".join(
            f'<li><a href="/{html.escape(n)}/">{html.escape(n)}</a></li>' for n in sorted(self.svc.origins)
        )
        return web.Response(text=f"<!doctype html><title>Lesson cache</title><h1>Lesson cache</h1><ul>{items}</ul>",
                            content_type="text/html")

    async def get(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return json_error(405, f"method {request.method} not allowed: the cache is read-only")
        raw = request.raw_path
        target = self._targets.get(raw)
        if target is None:
            try:
                target = resolve_target(raw, self.svc.origins)
            except TargetError as e:
                return json_error(e.status, e.message)
            # Memoised per process (origins are fixed for the app's life): on a hit, resolving a file://
            # path (realpath: a few syscalls) was a tenth of the request. A bounded map, reset when full.
            if len(self._targets) >= TARGET_MEMO:
                self._targets.clear()
            self._targets[raw] = target
        svc = self.svc
        entry = svc.store.get(target.key)
        now = time.time()
        if entry is not None and now >= entry.fresh_until and svc.locks is not None:
            # Another worker may have refreshed or replaced it: our in-memory mirror can be behind.
            entry = svc.store.reload(target.key)
        if entry is not None:
            if now < entry.fresh_until:
                return await self.serve_entry(request, entry, "HIT", target)
            stale_for = now - entry.fresh_until
            if stale_for < entry.swr_s:
                svc.revalidate_in_background(target, entry)
                return await self.serve_entry(request, entry, "STALE", target)
            if svc.is_down(target.origin) and stale_for < entry.sie_s:
                # Upstream failed recently: don't make a class wait on it again during the back-off.
                return await self.serve_entry(request, entry, "STALE", target)
        dl, joined = svc.download(target, entry)
        return await self.serve_download(request, dl, joined, entry, target)

    # -- hits ------------------------------------------------------------------------------------------

    async def serve_entry(self, request: web.Request, entry: Entry, label: str, target: Target) -> web.StreamResponse:
        svc = self.svc
        try:
            # Opening a cached body is a metadata lookup; cheaper inline than a thread hop per hit.
            fd = os.open(svc.store.body_path(entry), os.O_RDONLY)
        except FileNotFoundError:
            # Replaced or evicted by another process (prefetch CLI, check, another worker): re-read the
            # index, else fetch.
            newer = svc.store.reload(entry.key)
            if newer is not None and newer.body != entry.body:
                return await self.serve_entry(request, newer, label, target)
            svc.store.remove(entry.key)
            dl, joined = svc.download(target)
            return await self.serve_download(request, dl, joined, None, target)
        serving = svc.serving
        key = entry.key
        serving[key] += 1
        try:
            return await self._send_file(request, entry, label, fd)
        finally:
            if serving[key] <= 1:
                del serving[key]
            else:
                serving[key] -= 1

    async def _send_file(self, request: web.Request, entry: Entry, label: str, fd: int, *,
                         count: bool = True) -> web.StreamResponse:
        """Serve a committed body (`fd` is ours to close); `count=False` when the caller already counted."""
        svc = self.svc
        svc.store.touch(entry)
        if count and label == "STALE":
            svc.stats.stale += 1
        elif count:
            svc.stats.hits += 1
        etag = entry.validator
        headers = _base_headers(etag, entry.last_modified, entry.content_type, entry.key, label)
        headers["Age"] = str(max(0, int(time.time() - entry.fetched_at)))
        if entry.cache_control:
            headers["Cache-Control"] = entry.cache_control
        if entry.content_encoding:
            headers["Content-Encoding"] = entry.content_encoding
        size = entry.size
        start, end, status = 0, size, 200
        req_headers = request.headers
        if any(name in req_headers for name in _CONDITIONAL):  # most hits carry none of these: skip the parsing
            lm = parse_http_date(entry.last_modified)
            cond = check_conditionals(req_headers, etag, lm)
            if cond is not None:
                os.close(fd)
                return _precondition_response(cond, headers)
            ranges = None
            if "Range" in req_headers and if_range_allows(req_headers, etag, lm):
                try:
                    ranges = parse_range(req_headers["Range"], size)
                except Unsatisfiable:
                    os.close(fd)
                    headers["Content-Range"] = f"bytes */{size}"
                    return json_error_with(416, "range not satisfiable", headers, size=size)
            if ranges and len(ranges) > 1:
                try:
                    return await self._multipart(request, fd, ranges, size, headers)
                finally:
                    os.close(fd)
            if ranges:
                start, end = ranges[0]
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
                status = 206
        if request.method != "HEAD":
            svc.stats.bytes_served += end - start
        resp = CachedFileResponse(fd, start, end - start, status, headers)
        with contextlib.suppress(ConnectionError):  # the client left mid-transfer: normal when seeking
            await resp.prepare(request)
        return resp

    async def _multipart(self, request: web.Request, fd: int, ranges: list[tuple[int, int]], size: int,
                         headers: dict[str, str]) -> web.StreamResponse:
        """A multipart/byteranges 206 (RFC 9110 §14.6), parts in the order asked."""
        boundary = secrets.token_hex(16)
        ctype = headers["Content-Type"]
        heads = [
            f"\r\n--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {s}-{e - 1}/{size}\r\n\r\n".encode()
            for s, e in ranges
        ]
        tail = f"\r\n--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
        resp = web.StreamResponse(status=206, headers=headers)
        resp.content_length = sum(len(h) + e - s for h, (s, e) in zip(heads, ranges, strict=True)) + len(tail)
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        try:
            for head, (s, e) in zip(heads, ranges, strict=True):
                await resp.write(head)
                pos = s
                while pos < e:
                    data = os.pread(fd, min(CHUNK, e - pos), pos)
                    if not data:
                        raise ConnectionResetError("body shrank")  # cannot happen for committed bodies
                    await resp.write(data)
                    pos += len(data)
                    self.svc.stats.bytes_served += len(data)
            await resp.write(tail)
            await resp.write_eof()
        except ConnectionResetError:
            pass
        return resp

    # -- misses, coalesced waits, revalidation ---------------------------------------------------------

    async def serve_download(self, request: web.Request, dl: Download, joined: bool, stale: Entry | None,
                             target: Target) -> web.StreamResponse:
        svc = self.svc
        dl.readers += 1
        svc.serving[target.key] += 1
        try:
            await dl.ready.wait()
            if dl.outcome == "error":
                assert dl.error is not None
                current = svc.store.get(target.key)
                if current is not None and time.time() - current.fresh_until < current.sie_s:
                    return await self.serve_entry(request, current, "STALE", target)
                if dl.error.kind in ("down", "stall"):
                    return json_error(504, f"upstream {target.origin!r} is unavailable and this object is not "
                                      "cached", detail=dl.error.message, path=target.path)
                return json_error(502, f"upstream {target.origin!r} failed", detail=dl.error.message,
                                  path=target.path)
            if dl.outcome == "not_modified":
                assert dl.entry is not None
                return await self.serve_entry(request, dl.entry, "HIT", target)
            if dl.outcome == "passthrough":
                keep = {k: v for k, v in dl.headers.items() if k in ("Content-Type", "Location", "Retry-After")}
                keep["X-Cache"] = "MISS"
                return web.Response(status=dl.status, body=dl.passthrough_body, headers=keep)
            joined = joined or dl.followed  # another worker's download counts as coalesced too
            label = "COALESCED" if joined else "MISS"
            if joined:
                svc.stats.coalesced += 1
            else:
                svc.stats.misses += 1
            if dl.ok and dl.entry is not None and svc.store.get(target.key) is dl.entry:
                fd = os.open(svc.store.body_path(dl.entry), os.O_RDONLY)
                return await self._send_file(request, dl.entry, label, fd, count=False)
            return await self._stream(request, dl, label, target)
        finally:
            dl.release_reader()
            svc.release_serving(target.key)

    async def _stream(self, request: web.Request, dl: Download, label: str, target: Target) -> web.StreamResponse:
        """Answer from the growing temp file, bytes going out as they arrive."""
        etag, lm = dl.etag, dl.last_modified
        headers = _base_headers(etag, dl.headers.get("Last-Modified"), dl.headers.get("Content-Type"),
                                target.key, label)
        for name in ("Cache-Control", "Content-Encoding"):
            if name in dl.headers:
                headers[name] = dl.headers[name]
        cond = check_conditionals(request.headers, etag, lm)
        if cond is not None:
            return _precondition_response(cond, headers)
        total = dl.total
        start, end, status = 0, total, 200
        if total is None:
            headers.pop("Accept-Ranges")
        elif "Range" in request.headers and if_range_allows(request.headers, etag, lm):
            try:
                ranges = parse_range(request.headers["Range"], total)
            except Unsatisfiable:
                headers["Content-Range"] = f"bytes */{total}"
                return json_error_with(416, "range not satisfiable", headers, size=total)
            # A multi-range request on an object still arriving gets the whole thing (allowed by RFC 9110).
            if ranges and len(ranges) == 1:
                start, end = ranges[0]
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
                if start > dl.received + NEAR_SEEK and not dl.finished.is_set():
                    far = await self._far_range(request, dl, start, end, headers)
                    if far is not None:
                        return far
        resp = web.StreamResponse(status=status, headers=headers)
        if end is not None:
            resp.content_length = end - start
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        try:
            fd = dl.open_reader()
        except FileNotFoundError:
            return _abort(request, resp)  # the download failed and cleaned up before we could join
        source, rep = dl.source, dl.rep
        try:
            pos = start
            while end is None or pos < end:
                if dl.source != source:
                    # Another worker took the download over (or committed it): other file, same bytes only if
                    # the representation is the same one our headers announced.
                    if dl.rep != rep or not is_strong(rep[0]):
                        log.warning("aborting %s to a client after %d bytes: the object changed mid-download",
                                    target.key, pos)
                        return _abort(request, resp)
                    os.close(fd)
                    fd = -1
                    fd = dl.open_reader()
                    source = dl.source
                wake = dl.progress()
                limit = dl.received
                if not dl.ok and total is not None:
                    limit = min(limit, total - 1)  # hold the last byte until the body is complete and verified
                upto = limit if end is None else min(limit, end)
                if pos < upto:
                    data = os.pread(fd, min(CHUNK, upto - pos), pos)
                    await resp.write(data)
                    pos += len(data)
                    self.svc.stats.bytes_served += len(data)
                    continue
                if dl.finished.is_set():
                    if dl.error is not None:
                        log.warning("aborting %s to a client after %d bytes: %s", target.key, pos, dl.error.message)
                        return _abort(request, resp)
                    if end is None:
                        break
                await wake.wait()
            await resp.write_eof()
        except ConnectionResetError:
            pass  # client went away; the download carries on for everyone else
        except FileNotFoundError:
            return _abort(request, resp)  # the new source vanished (its download failed too)
        finally:
            if fd >= 0:
                os.close(fd)
        return resp

    async def _far_range(self, request: web.Request, dl: Download, start: int, end: int,
                         headers: dict[str, str]) -> web.StreamResponse | None:
        """A seek far beyond what has arrived: relay that range from upstream (not cached).

        Returns None when upstream does not answer with the same representation's range; the caller
        then waits on the growing file instead.
        """
        req = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        if dl.etag and not dl.etag.startswith("W/"):
            req["If-Range"] = dl.etag
        async with contextlib.AsyncExitStack() as stack:
            try:
                up = await stack.enter_async_context(self.svc.upstream.open(dl.target.url, req))
            except UpstreamError as e:
                log.info("far range for %s failed upstream (%s); waiting on the download", dl.target.key, e)
                return None
            if up.status != 206 or up.headers.get("Content-Range") != headers["Content-Range"]:
                return None  # not the same representation's range: serve from the growing file instead
            resp = web.StreamResponse(status=206, headers={**headers, "X-Cache": "MISS"})
            resp.content_length = end - start
            await resp.prepare(request)
            if request.method == "HEAD":
                return resp
            try:
                async for chunk in up.chunks:
                    await resp.write(chunk)
                    self.svc.stats.bytes_served += len(chunk)
                await resp.write_eof()
            except ConnectionResetError:
                pass
            except UpstreamError as e:
                log.warning("far range for %s broke off upstream: %s", dl.target.key, e)
                return _abort(request, resp)
            return resp
        return None  # unreachable; keeps mypy's return analysis simple


def json_error_with(status: int, message: str, headers: dict[str, str], **extra: Any) -> web.Response:
    resp = json_error(status, message, **extra)
    for k in ("Content-Range", "X-Cache", "ETag"):
        if k in headers:
            resp.headers[k] = headers[k]
    return resp


def _abort(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """Cut the connection so the client sees a truncated body, never a short one passed off as whole."""
    if request.transport is not None:
        request.transport.abort()
    resp.force_close()
    return resp


def effective_origins(config: EdgeConfig) -> dict[str, str]:
    """Configured origins; with none, the built-in demo lesson pack (generated on first use)."""
    if config.cache.origins:
        return dict(config.cache.origins)
    pack = ensure_demo_pack(config.cache_dir / "demo-pack")
    return {"demo": pack.resolve().as_uri()}


def build_service(config: EdgeConfig, *, shared: bool = False, worker: int = 0) -> CacheService:
    """The cache's service; `shared` when several worker processes serve the same cache dir."""
    c = config.cache
    return CacheService.create(
        config.cache_dir, effective_origins(config), default_ttl_s=c.default_ttl_s, max_bytes=c.max_bytes,
        backoff_s=c.backoff_s, stall_timeout_s=c.stall_timeout_s, shared=shared, worker=worker,
    )


def make_app(config: EdgeConfig, *, worker: int | None = None) -> web.Application:
    """The cache as an aiohttp application (a fresh service per app: tests build one per test).

    `worker` (0..N-1) makes it one of N worker processes sharing the cache dir: downloads coordinate
    through per-object locks, and the startup repair is left to the parent (which runs it before any
    worker starts: a worker that restarts must not remove another worker's just-renamed body).
    """
    svc = build_service(config, shared=worker is not None, worker=worker or 0)
    if worker is None:
        svc.store.check()  # clear temp files of dead writers (a crash mid-download) before serving
    else:
        svc.stats_dir = svc.store.dir / "stats"  # the other workers sum our counters into their stats
    app = web.Application()
    app[SERVICE] = svc
    h = Handlers(svc)
    add_admin_routes(app, svc, config.cache.admin_token)
    app.router.add_get("/", h.index)
    app.router.add_route("*", "/{tail:.+}", h.get)

    async def lifecycle(app: web.Application) -> Any:
        async def flush() -> None:
            while True:
                await asyncio.sleep(ACCESS_FLUSH_S)
                svc.store.flush_access()

        async def publish() -> None:
            while True:
                with contextlib.suppress(OSError):  # advisory figures: a full disk must not stop serving
                    svc.publish_stats()
                await asyncio.sleep(PUBLISH_INTERVAL_S)

        tasks = [asyncio.create_task(flush())]
        if svc.stats_dir is not None:
            tasks.append(asyncio.create_task(publish()))
        yield
        for task in tasks:
            task.cancel()
        await svc.close()
        with contextlib.suppress(OSError):
            svc.publish_stats(force=True)  # final figures (the file is ignored once our pid is gone)

    app.cleanup_ctx.append(lifecycle)
    return app


async def start_cache(config: EdgeConfig) -> web.AppRunner:
    """Start the cache on config.cache.host/port inside a running loop; stop it with `runner.cleanup()`."""
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.cache.host, config.cache.port, reuse_address=True)
    await site.start()
    log.info("lesson cache on http://%s:%d/ (dir %s)", config.cache.host, config.cache.port, config.cache_dir)
    return runner


__all__ = ["SERVICE", "http_date", "make_app", "start_cache"]
