"""Answers from a download in flight: the growing temp file, bytes going out as they arrive.

Every waiter of a coalesced download reads the same file; the last byte is held back until the body is
complete and verified, and a reader whose representation changed under it (a takeover of another version)
is cut off rather than handed a mix. A seek far beyond what has arrived is relayed from upstream.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from content_cache.download import Download
from content_cache.http import Unsatisfiable, check_conditionals, if_range_allows, parse_http_date, parse_range
from content_cache.paths import Target
from content_cache.responses import CHUNK, abort, precondition_response, typed, unsatisfiable
from edge.exc import UpstreamError

if TYPE_CHECKING:
    from content_cache.service import CacheService

log = logging.getLogger(__name__)
NEAR_SEEK = 2 * 1024 * 1024  # a range starting within this of what has arrived waits for the download


def download_headers(dl: Download, label: str) -> CIMultiDict[str]:
    """The response's fields as upstream sent them (a MISS) or, for a client that joined it, with its Age."""
    headers = typed(CIMultiDict(dl.headers), dl.target.key, dl.total)
    headers["X-Cache"] = label
    if label != "MISS":
        headers["Age"] = str(dl.age(time.time()))
    return headers


async def stream(svc: CacheService, request: web.Request, dl: Download, label: str,
                 target: Target) -> web.StreamResponse:
    """Answer from the growing temp file."""
    etag, lm = dl.etag, dl.last_modified
    headers = download_headers(dl, label)
    total = dl.total
    start, end, status = 0, total, dl.status
    if 200 <= status < 300:  # preconditions apply to a 2xx answer only, ranges to a 200 of known length
        cond = check_conditionals(request.headers, etag, lm, parse_http_date(dl.headers.get("Date")))
        if cond is not None:
            return precondition_response(cond, headers)
        if status == 200 and total is not None:
            headers["Accept-Ranges"] = "bytes"
            if "Range" in request.headers and if_range_allows(request.headers, etag, lm):
                try:
                    ranges = parse_range(request.headers["Range"], total)
                except Unsatisfiable:
                    return unsatisfiable(total, headers)
                # A multi-range request on an object still arriving gets the whole thing (allowed by RFC 9110).
                if ranges and len(ranges) == 1:
                    start, end = ranges[0]
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
                    if start > dl.received + NEAR_SEEK and not dl.finished.is_set():
                        far = await _far_range(svc, request, dl, start, end, headers)
                        if far is not None:
                            return far
    resp = web.StreamResponse(status=status, headers=headers)
    if end is not None:
        resp.content_length = end - start
    await resp.prepare(request)
    if request.method == "HEAD" or end == start:
        return resp
    try:
        fd = dl.open_reader()
    except FileNotFoundError:
        return abort(request, resp)  # the download failed and cleaned up before we could join
    try:
        return await _pump(svc, request, resp, dl, fd, (start, end, total), target)
    except FileNotFoundError:
        return abort(request, resp)  # the new source vanished (its download failed too)


async def _pump(svc: CacheService, request: web.Request, resp: web.StreamResponse, dl: Download, fd: int,
                span: tuple[int, int | None, int | None], target: Target) -> web.StreamResponse:
    """Copy bytes [start, end) of the `total`-byte download to `resp` as they arrive (closes `fd`)."""
    start, end, total = span
    source, rep = dl.source, dl.rep
    try:
        pos = start
        while end is None or pos < end:
            if dl.source != source:
                # Another worker took the download over (or committed it): other file, same bytes only if
                # the representation is the same one our headers announced.
                if not dl.still_same(rep):
                    log.warning("aborting %s to a client after %d bytes: the object changed mid-download",
                                target.key, pos)
                    return abort(request, resp)
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
                svc.stats.bytes_served += len(data)
                continue
            if dl.finished.is_set():
                if dl.error is not None:
                    log.warning("aborting %s to a client after %d bytes: %s", target.key, pos, dl.error.message)
                    return abort(request, resp)
                if end is None:
                    break
            await wake.wait()
        await resp.write_eof()
    except ConnectionResetError:
        pass  # client went away; the download carries on for everyone else
    finally:
        if fd >= 0:
            os.close(fd)
    return resp


async def _far_range(svc: CacheService, request: web.Request, dl: Download, start: int, end: int,
                     headers: CIMultiDict[str]) -> web.StreamResponse | None:
    """A seek far beyond what has arrived: relay that range from upstream (not cached).

    Returns None when upstream does not answer with the same representation's range; the caller then waits
    on the growing file instead.
    """
    req = CIMultiDict(dl.want.headers)
    req["Range"] = f"bytes={start}-{end - 1}"
    if dl.etag and not dl.etag.startswith("W/"):
        req["If-Range"] = dl.etag
    async with contextlib.AsyncExitStack() as stack:
        try:
            up = await stack.enter_async_context(svc.upstream.open(dl.target.url, req))
        except UpstreamError as e:
            log.info("far range for %s failed upstream (%s); waiting on the download", dl.target.key, e)
            return None
        if up.status != 206 or up.headers.get("Content-Range") != headers["Content-Range"]:
            return None  # not the same representation's range: serve from the growing file instead
        headers["X-Cache"] = "MISS"
        resp = web.StreamResponse(status=206, headers=headers)
        resp.content_length = end - start
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        try:
            async for chunk in up.chunks:
                await resp.write(chunk)
                svc.stats.bytes_served += len(chunk)
            await resp.write_eof()
        except ConnectionResetError:
            pass
        except UpstreamError as e:
            log.warning("far range for %s broke off upstream: %s", dl.target.key, e)
            return abort(request, resp)
        return resp
    return None  # unreachable; keeps mypy's return analysis simple
