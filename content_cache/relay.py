"""Requests the cache does not answer from storage (POST, PUT, DELETE, PATCH, OPTIONS, other methods): relayed to
the origin with the client's end-to-end fields and body, the answer streamed back with upstream's status and
end-to-end fields; a non-error answer to an unsafe method invalidates what is stored for the URL and its
Location/Content-Location (RFC 9111 §4.4). Lessons that post answers to their own origin work through the
cache; a lesson pack (file://) is read-only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from content_cache.fetch import client_fields
from content_cache.forward import request_fields
from content_cache.http import invalidates
from content_cache.paths import Target
from content_cache.responses import abort
from edge.exc import RequestError, UpstreamError
from edge.serving.aio import json_error

if TYPE_CHECKING:
    from content_cache.service import CacheService

BODY_LIMIT = 32 * 1024 * 1024  # a request body larger than this is refused (413): lessons post answers, not media
CHUNK = 64 * 1024
NOT_RELAYED = frozenset({"CONNECT", "TRACE"})  # no tunnels through the cache; TRACE would echo the client's fields
MAX_METHOD = 32  # longer method names are refused, not sent on


class _Body:
    """The client's request body, streamed upstream, cut off beyond BODY_LIMIT."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.too_big = False

    async def chunks(self) -> AsyncIterator[bytes]:
        sent = 0
        async for chunk in self.request.content.iter_chunked(CHUNK):
            sent += len(chunk)
            if sent > BODY_LIMIT:
                self.too_big = True
                raise UpstreamError("short", "request body too large")
            yield chunk


def _too_big() -> RequestError:
    return RequestError(413, f"request body larger than {BODY_LIMIT} bytes", key="Content-Length",
                        reason=f"at most {BODY_LIMIT} bytes are relayed")


async def relay(svc: CacheService, request: web.Request, target: Target) -> web.StreamResponse:
    """Send the request on to the origin and stream its answer back."""
    method = request.method
    if method in NOT_RELAYED or len(method) > MAX_METHOD:
        raise RequestError(405, f"method {method[:MAX_METHOD]} is not relayed by the cache",
                           headers={"Allow": "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE"})
    length = request.content_length
    if length is not None and length > BODY_LIMIT:
        raise _too_big()
    headers = request_fields(request.headers, svc.admin_token, cached=False)
    if length is not None:
        headers["Content-Length"] = str(length)
    body = _Body(request) if request.can_read_body else None
    svc.stats.passed += 1
    resp: web.StreamResponse | None = None
    try:
        async with svc.upstream.open(target.url, headers, method=method,
                                     data=body.chunks() if body is not None else None) as up:
            svc.mark_healthy(target.origin)
            if invalidates(method, up.status):
                svc.invalidate(target, up.headers)  # before the body goes out: a GET right after sees the change
            resp = web.StreamResponse(status=up.status, reason=up.reason or None,
                                      headers=client_fields(up.headers, target, svc.origins))
            size = up.headers.get("Content-Length")
            if size is not None and size.isdigit() and up.status not in (204, 304):
                resp.content_length = int(size)
            await resp.prepare(request)
            if method != "HEAD":
                async for chunk in up.chunks:
                    await resp.write(chunk)
            await resp.write_eof()
            return resp
    except UpstreamError as e:
        if body is not None and body.too_big:
            raise _too_big() from None
        if resp is not None and resp.prepared:
            return abort(request, resp)
        svc.record_failure(target.origin, e.message, back_off=e.kind == "down")
        status = 504 if e.kind in ("down", "stall") else 502
        return json_error(status, f"upstream {target.origin!r} failed for {method} {target.path!r}",
                          reason=e.message)
    except ConnectionResetError:  # the client went away mid-answer
        if resp is None:
            raise
        return resp
