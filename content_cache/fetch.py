"""A Download's exchange with upstream: the request (the client's fields; the stored response's validators when
revalidating; a Range to finish a dead worker's partial file), what the answer means (a 304 refreshes the
stored response, a 5xx may leave it answering, anything else is the new response), and the new response's
body: written to the temp file, verified against a manifest, stored when RFC 9111 allows.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from content_cache.coordination import Partial
from content_cache.entry import Entry
from content_cache.fields import Fields, end_to_end
from content_cache.http import (
    Freshness,
    freshness,
    revalidation_matches,
    secondary_key,
    storable,
    stored_fields,
    updated_fields,
    vary_names,
    worth_storing,
)
from content_cache.paths import Target, localize_location
from content_cache.store import variant_key
from content_cache.upstream import UpstreamResponse
from edge.exc import UpstreamError

if TYPE_CHECKING:
    from content_cache.download import Download

log = logging.getLogger(__name__)
SERVER_ERRORS = frozenset({500, 502, 503, 504})  # a stored response may stand in for these (RFC 5861)
NO_CONTENT = frozenset({204, 304})


def _hash_prefix(path: Path, size: int) -> Any:
    """sha256 state after the first `size` bytes of `path` (a resumed download's digest goes on from it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left and (chunk := f.read(min(1 << 20, left))):
            h.update(chunk)
            left -= len(chunk)
    if left:
        raise UpstreamError("short", "the partial download shrank while resuming it")
    return h


def client_fields(headers: Fields, target: Target, origins: dict[str, str]) -> CIMultiDict[str]:
    """Upstream's end-to-end fields as clients get them: a Location into a configured origin points here."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in end_to_end(headers):
        if name.lower() == "location":
            value = localize_location(value, target.url, origins)
        out.add(name, value)
    return out


async def fetch(dl: Download, partial: Partial | None = None) -> None:
    """Fetch from upstream: conditional when we hold a stored response, a Range request to finish `partial`."""
    svc, t = dl.svc, dl.target
    req = CIMultiDict(dl.want.headers)
    if partial is not None:
        # If-Range: the rest only if it is still the same representation, else the whole new one (200).
        req["Range"] = f"bytes={partial.size}-"
        req["If-Range"] = partial.etag
    elif dl.stale is not None:
        if dl.stale.etag:
            req["If-None-Match"] = dl.stale.etag
        if dl.stale.last_modified:
            req["If-Modified-Since"] = dl.stale.last_modified
    again = False
    dl.requested_at = time.time()
    async with svc.upstream.open(t.url, req) as up:
        dl.status = up.status
        svc.mark_healthy(t.origin)
        if partial is not None:
            if up.status == 206 and partial.matches(up.headers):
                dl.status = 200  # what the object is; the 206 only carried its rest
                await receive(dl, up, partial)
                return
            dl.tmp.unlink(missing_ok=True)  # not resumable: from byte 0
            if up.status != 200:
                again = up.status in (206, 304, 412, 416)  # a range we cannot use: ask for the whole
        if not again:
            again = await _answer(dl, up)
    if again:
        log.info("asking upstream for %s again, unconditionally (answer %d was not usable)", t.key, dl.status)
        dl.stale = None
        await fetch(dl)


async def _answer(dl: Download, up: UpstreamResponse) -> bool:
    """Handle upstream's answer to a plain or conditional request; True to ask again without conditions."""
    stale = dl.stale
    if up.status == 304 and stale is not None:
        if not revalidation_matches(stale.etag, up.headers):
            return True  # a 304 for another representation (RFC 9111 §4.3.4): it updates nothing we hold
        refresh(dl, stale, client_fields(up.headers, dl.target, dl.svc.origins))
        return False
    if up.status in SERVER_ERRORS and stale is not None and dl.svc.stale_ok(stale, dl.target.origin, unreachable=False):
        log.info("upstream answered %d for %s: serving the stored response", up.status, dl.target.key)
        dl.entry = stale
        dl.outcome = "use_stale"
        return False
    await receive(dl, up, None)
    return False


def _describe(dl: Download) -> tuple[bool, Freshness]:
    """Set the response's caching facts on `dl`; (store it?, its Freshness)."""
    policy = dl.svc.policy(dl.target.origin)
    fr = freshness(dl.headers, policy.default_ttl_s, time.time(), status=dl.status, request_time=dl.requested_at,
                   targeted=policy.targeted)
    vary = vary_names(dl.headers)
    store = (fr.store and vary is not None and storable(dl.status, dl.headers, dl.want.headers, policy.targeted)
             and worth_storing(dl.status, dl.headers, fr.fresh_until > time.time()))
    dl.described(fr.fresh_until, fr.initial_age, store, vary, secondary_key(vary, dl.want.headers) if vary else "")
    return store, fr


async def receive(dl: Download, up: UpstreamResponse, partial: Partial | None) -> None:
    """Write the body to our temp file (after `partial`'s bytes when resuming), verify, commit."""
    svc = dl.svc
    loop = asyncio.get_running_loop()
    if partial is None:
        dl.headers = client_fields(up.headers, dl.target, dl.svc.origins)
        length = up.headers.get("Content-Length")
        dl.total = 0 if dl.status in NO_CONTENT else int(length) if length and length.isdigit() else None
        dl.wfd = os.open(dl.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        start = 0
    else:
        # The representation's fields are the 200's; caching fields as fresh as the 206's.
        dl.headers = partial.headers.copy()
        for name in ("Date", "Age"):
            dl.headers.popall(name, None)
        for name in ("Cache-Control", "Expires", "Date", "Age", "Last-Modified"):
            if name in up.headers:
                dl.headers[name] = up.headers[name]
        dl.total = partial.total
        dl.wfd = os.open(dl.tmp, os.O_WRONLY)
        start = partial.size
        os.ftruncate(dl.wfd, start)
        os.lseek(dl.wfd, start, os.SEEK_SET)
        svc.stats.resumed += 1
        log.info("resuming %s at byte %d of %d", dl.target.key, start, partial.total)
    store, fr = _describe(dl)
    # From here readers read our temp file (after a takeover: instead of the dead leader's).
    dl.close_source()
    dl.path = dl.tmp
    dl.source = dl.tmp.name
    dl.received = start
    dl.outcome = "body"
    dl.publish()
    dl.ready.set()
    dl.notify()
    fd = dl.wfd
    sha = hashlib.sha256()
    if start:
        sha = await loop.run_in_executor(None, _hash_prefix, dl.tmp, start)
    async for chunk in up.chunks:
        # Plain write(): the bytes land in the page cache; fsync (in a thread) comes once, at the end.
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
        sha.update(chunk)
        dl.received += len(chunk)
        svc.stats.bytes_fetched += len(chunk)
        dl.notify()
    if dl.total is not None and dl.received != dl.total:
        raise UpstreamError("short", f"upstream sent {dl.received} of {dl.total} bytes")
    digest = sha.hexdigest()
    if dl.status == 200:  # a manifest describes the object, not an error page in its place
        if dl.expect.size is not None and dl.expect.size != dl.received:
            raise UpstreamError("verify", f"size {dl.received} != manifest size {dl.expect.size}")
        if dl.expect.sha256 is not None and dl.expect.sha256.lower() != digest:
            raise UpstreamError("verify", f"sha256 {digest} != manifest sha256 {dl.expect.sha256}")
    dl.total = dl.received
    if store:
        await loop.run_in_executor(None, os.fsync, fd)
    os.close(fd)
    dl.wfd = -1
    if store:
        _commit(dl, digest, fr)
    elif dl.status in (404, 410) and dl.stale is not None:
        svc.store.remove(dl.stale.key)  # gone upstream: stop serving it


def _commit(dl: Download, digest: str, fr: Freshness) -> None:
    svc, t = dl.svc, dl.target
    vary = dl.vary or ()
    key = variant_key(t.key, vary, dl.want.headers) if vary else t.key
    entry = Entry(
        key=key, url=t.url, origin=t.origin, body=svc.store.body_name(key), size=dl.received, sha256=digest,
        fetched_at=dl.received_at, fresh_until=fr.fresh_until, swr_s=fr.swr_s, sie_s=fr.sie_s, status=dl.status,
        headers=stored_fields(dl.headers, svc.policy(t.origin).targeted), initial_age=fr.initial_age,
        # a manifest pins the object it names, not an error page in its place
        no_stale=fr.no_stale, vary=vary, pinned=svc.pin_requests.pop(t.key, False) and dl.status == 200,
    )
    svc.store.commit(dl.tmp, entry)
    dl.path = svc.store.body_path(entry)  # same event-loop step as the rename: no reader sees a gap
    dl.stored = True
    dl.entry = entry
    svc.evict_to_fit()


def refresh(dl: Download, entry: Entry, fields: CIMultiDict[str]) -> None:
    """A 304: the stored response with the 304's fields and new freshness (RFC 9111 §4.3.4)."""
    policy = dl.svc.policy(dl.target.origin)
    now = time.time()
    merged = updated_fields(entry.headers, fields)
    fr = freshness(CIMultiDict(merged), policy.default_ttl_s, now, status=entry.status,
                   request_time=dl.requested_at, targeted=policy.targeted)
    entry.set_headers(merged)
    entry.fetched_at, entry.initial_age = now, fr.initial_age
    entry.fresh_until, entry.swr_s, entry.sie_s, entry.no_stale = fr.fresh_until, fr.swr_s, fr.sie_s, fr.no_stale
    dl.svc.store.update(entry)
    dl.svc.stats.revalidated += 1
    dl.entry = entry
    dl.outcome = "not_modified"
