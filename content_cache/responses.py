"""Answers from stored responses: the stored status and fields with a current Age, the body by sendfile for
the whole or one range, multipart ranges, 304/412/416.

Preconditions and ranges are decided by content_cache.http (aiohttp's FileResponse ignores ETag If-Range,
refuses multi-range and replaces upstream's ETag), and the bytes go out with sendfile(2).
"""

from __future__ import annotations

import contextlib
import functools
import mimetypes
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

from content_cache.entry import Entry
from content_cache.http import Unsatisfiable, check_conditionals, if_range_allows, parse_range
from edge.serving.aio import json_error

if TYPE_CHECKING:
    from content_cache.service import CacheService

CHUNK = 256 * 1024
# Request headers that make a hit more than "send the whole body": checked once, parsed only if present.
_CONDITIONAL = ("Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")
# RFC 9110 §15.4.5: what a 304 carries of the response it stands for.
_NOT_MODIFIED_FIELDS = frozenset({"content-location", "date", "etag", "vary", "cache-control", "expires",
                                  "last-modified", "age", "x-cache"})


class CachedFileResponse(web.StreamResponse):
    """A committed body (an open fd) or a range of it, sent with sendfile(2).

    Not `web.FileResponse`: that one builds a `pathlib.Path`, decides preconditions and ranges itself (it
    ignores ETag If-Range and refuses multi-range) and goes through `loop.sendfile` even when the whole body
    fits into the socket buffer. Here one non-blocking `os.sendfile` usually sends a small body at once; only
    what does not fit goes through `loop.sendfile` (zero-copy too), which waits for the socket.
    """

    def __init__(self, fd: int, offset: int, count: int, status: int, headers: CIMultiDict[str]) -> None:
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
def guess_type(key: str) -> str:
    return mimetypes.guess_type(key.split("?", 1)[0])[0] or "application/octet-stream"


def typed(headers: CIMultiDict[str], key: str, size: int | None) -> CIMultiDict[str]:
    """A body without Content-Type gets one guessed from its path: aiohttp would send application/octet-stream,
    and a browser would download a lesson page instead of showing it."""
    if "Content-Type" not in headers and size != 0:
        headers["Content-Type"] = guess_type(key)
    return headers


def entry_headers(entry: Entry, label: str, now: float) -> CIMultiDict[str]:
    """A stored response's fields as sent: with its current Age (RFC 9111 §4.2.3) and where it came from."""
    h = typed(CIMultiDict(entry.headers), entry.primary, entry.size)
    h["Age"] = str(entry.age(now))
    h["X-Cache"] = label
    if entry.status == 200:
        h["Accept-Ranges"] = "bytes"
    return h


def precondition_response(status: int, headers: CIMultiDict[str]) -> web.Response:
    keep = CIMultiDict((k, v) for k, v in headers.items() if k.lower() in _NOT_MODIFIED_FIELDS)
    return web.Response(status=status, headers=keep)


def unsatisfiable(size: int, headers: CIMultiDict[str]) -> web.Response:
    """416 with `Content-Range: bytes */size` (and the validators, so the client can tell what it missed)."""
    keep: dict[str, str] = {k: headers[k] for k in ("X-Cache", "ETag") if k in headers}
    keep["Content-Range"] = f"bytes */{size}"
    return json_error(416, "range not satisfiable", key="Range", reason=f"the representation has {size} bytes",
                      headers=keep)


def abort(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    """Cut the connection so the client sees a truncated body, never a short one passed off as whole."""
    if request.transport is not None:
        request.transport.abort()
    resp.force_close()
    return resp


async def send_body(svc: CacheService, request: web.Request, entry: Entry, label: str, fd: int, *,
                    count: bool = True) -> web.StreamResponse:
    """Serve a stored response (`fd`, its body, is ours to close); `count=False` when the caller counted."""
    svc.store.touch(entry)
    if count and label == "STALE":
        svc.stats.stale += 1
    elif count:
        svc.stats.hits += 1
    headers = entry_headers(entry, label, time.time())
    size = entry.size
    start, end, status = 0, size, entry.status
    req_headers = request.headers
    # Preconditions apply to a 2xx answer only, ranges to a 200 (RFC 9110 §13.2.1, §14.2); most hits carry
    # none of these headers: skip the parsing.
    if 200 <= status < 300 and any(name in req_headers for name in _CONDITIONAL):
        etag, lm = entry.etag, entry.modified_at()
        cond = check_conditionals(req_headers, etag, lm, entry.date())
        if cond is not None:
            os.close(fd)
            return precondition_response(cond, headers)
        ranges = None
        if status == 200 and "Range" in req_headers and if_range_allows(req_headers, etag, lm):
            try:
                ranges = parse_range(req_headers["Range"], size)
            except Unsatisfiable:
                os.close(fd)
                return unsatisfiable(size, headers)
        if ranges and len(ranges) > 1:
            try:
                return await _multipart(svc, request, fd, ranges, size, headers)
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


async def _multipart(svc: CacheService, request: web.Request, fd: int, ranges: list[tuple[int, int]], size: int,
                     headers: CIMultiDict[str]) -> web.StreamResponse:
    """A multipart/byteranges 206 (RFC 9110 §14.6), parts in the order asked."""
    boundary = secrets.token_hex(16)
    ctype = headers.get("Content-Type", "application/octet-stream")
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
                svc.stats.bytes_served += len(data)
        await resp.write(tail)
        await resp.write_eof()
    except ConnectionResetError:
        pass
    return resp
