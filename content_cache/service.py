"""The cache's brain: lookups, coalesced downloads streamed from a growing file, health, eviction, stats.

One `Download` per object in flight. It writes upstream's bytes to a temp file and announces progress;
every client asking for that object meanwhile (the "dozen students in the same second") reads the same
growing file, so there is exactly one upstream request and everyone gets bytes as they arrive. The download
is an independent task: it finishes even if the client that started it leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from multidict import CIMultiDict

from content_cache.http import freshness, parse_http_date
from content_cache.paths import Target
from content_cache.store import Entry, Store
from content_cache.upstream import Upstream, UpstreamError

log = logging.getLogger(__name__)

Outcome = Literal["pending", "body", "not_modified", "passthrough", "error"]
PASSTHROUGH_LIMIT = 64 * 1024  # non-200 upstream answers (404 pages...) are relayed, up to this size


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    stale: int = 0
    revalidated: int = 0  # upstream said 304: refreshed without re-downloading
    bytes_served: int = 0
    bytes_fetched: int = 0
    upstream_errors: int = 0
    evictions: int = 0
    verify_failures: int = 0


@dataclass
class OriginHealth:
    down_until: float = 0.0
    last_error: str = ""
    failures: int = 0

    def healthy(self, now: float) -> bool:
        return now >= self.down_until


@dataclass
class Expect:
    """What a prefetch manifest promises about an object; a mismatch is never committed."""

    sha256: str | None = None
    size: int | None = None


class Download:
    """One in-flight upstream fetch (or conditional revalidation) of one object."""

    def __init__(self, svc: CacheService, target: Target, stale: Entry | None, expect: Expect | None) -> None:
        self.svc = svc
        self.target = target
        self.stale = stale
        self.expect = expect or Expect()
        self.outcome: Outcome = "pending"
        self.error: UpstreamError | None = None
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.passthrough_body = b""
        self.total: int | None = None
        self.received = 0
        self.tmp = svc.store.new_temp()
        self.path = self.tmp  # what readers open: the temp file, then the committed body
        self.entry: Entry | None = None  # committed (or refreshed) entry once finished
        self.stored = False
        self.readers = 0
        self.ready = asyncio.Event()  # outcome known (headers, 304, error)
        self.finished = asyncio.Event()
        self._progress = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"download {target.key}")

    @property
    def ok(self) -> bool:
        """Finished, complete and verified: the last byte may be released to readers."""
        return self.finished.is_set() and self.error is None

    @property
    def etag(self) -> str | None:
        return self.headers.get("ETag")

    @property
    def last_modified(self) -> float | None:
        return parse_http_date(self.headers.get("Last-Modified"))

    def progress(self) -> asyncio.Event:
        """An event set at the next progress (bytes, end or failure): grab it before checking state."""
        return self._progress

    def _notify(self) -> None:
        ev, self._progress = self._progress, asyncio.Event()
        ev.set()

    def release_reader(self) -> None:
        self.readers -= 1
        if self.readers <= 0 and self.finished.is_set() and not self.stored:
            self.tmp.unlink(missing_ok=True)

    async def _run(self) -> None:
        svc, t = self.svc, self.target
        fd = -1
        req: dict[str, str] = {"Accept-Encoding": "identity"}
        if self.stale is not None:
            if self.stale.etag:
                req["If-None-Match"] = self.stale.etag
            if self.stale.last_modified:
                req["If-Modified-Since"] = self.stale.last_modified
        try:
            async with svc.upstream.open(t.url, req) as up:
                self.status = up.status
                if up.status >= 500:
                    raise UpstreamError("status", f"upstream answered {up.status}")
                svc.mark_healthy(t.origin)
                if up.status == 304 and self.stale is not None:
                    self._refresh(up.headers)
                    return
                if up.status != 200:
                    body = b""
                    async for chunk in up.chunks:
                        body += chunk
                        if len(body) >= PASSTHROUGH_LIMIT:
                            break
                    self.headers = CIMultiDict(up.headers)
                    self.passthrough_body = body[:PASSTHROUGH_LIMIT]
                    self.outcome = "passthrough"
                    if up.status in (404, 410) and self.stale is not None:
                        svc.store.remove(t.key)  # gone upstream: stop serving it
                    return
                self.headers = CIMultiDict(up.headers)
                length = up.headers.get("Content-Length")
                self.total = int(length) if length and length.isdigit() else None
                fr = freshness(up.headers, svc.default_ttl_s)
                fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                self.outcome = "body"
                self.ready.set()
                sha = hashlib.sha256()
                async for chunk in up.chunks:
                    # Plain write(): the bytes land in the page cache; fsync (in a thread) comes once, at the end.
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                    sha.update(chunk)
                    self.received += len(chunk)
                    svc.stats.bytes_fetched += len(chunk)
                    self._notify()
                if self.total is not None and self.received != self.total:
                    raise UpstreamError("short", f"upstream sent {self.received} of {self.total} bytes")
                digest = sha.hexdigest()
                if self.expect.size is not None and self.expect.size != self.received:
                    raise UpstreamError("verify", f"size {self.received} != manifest size {self.expect.size}")
                if self.expect.sha256 is not None and self.expect.sha256.lower() != digest:
                    raise UpstreamError("verify", f"sha256 {digest} != manifest sha256 {self.expect.sha256}")
                await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
                os.close(fd)
                fd = -1
                self.total = self.received
                if fr.store:
                    self._commit(digest, fr.fresh_until, fr.swr_s, fr.sie_s)
        except UpstreamError as e:
            self._fail(e)
        except asyncio.CancelledError:
            self.error = UpstreamError("down", "download cancelled (cache shutting down)")
            raise
        except OSError as e:  # our own disk: full, read-only...
            self._fail(UpstreamError("down", f"cache disk error: {e.strerror}"))
        finally:
            if fd >= 0:
                os.close(fd)
            if self.outcome == "pending":
                self.outcome = "error" if self.error else "passthrough"
            svc.inflight.pop(t.key, None)
            self.finished.set()
            self.ready.set()
            self._notify()
            if self.readers <= 0 and not self.stored:
                self.tmp.unlink(missing_ok=True)

    def _refresh(self, headers: Any) -> None:
        """A 304: new freshness (and validators if sent) for the body we already have."""
        assert self.stale is not None
        entry = self.stale
        fr = freshness(headers, self.svc.default_ttl_s)
        entry.fresh_until, entry.swr_s, entry.sie_s = fr.fresh_until, fr.swr_s, fr.sie_s
        entry.etag = headers.get("ETag", entry.etag)
        entry.last_modified = headers.get("Last-Modified", entry.last_modified)
        entry.cache_control = headers.get("Cache-Control", entry.cache_control)
        if self.svc.store.get(entry.key) is entry:
            self.svc.store.update(entry)
        self.svc.stats.revalidated += 1
        self.entry = entry
        self.outcome = "not_modified"

    def _commit(self, digest: str, fresh_until: float, swr_s: float, sie_s: float) -> None:
        svc, t, h = self.svc, self.target, self.headers
        entry = Entry(
            key=t.key, url=t.url, origin=t.origin, body=svc.store.body_name(t.key), size=self.received,
            sha256=digest, fetched_at=time.time(), fresh_until=fresh_until, swr_s=swr_s, sie_s=sie_s,
            etag=h.get("ETag"), last_modified=h.get("Last-Modified"), content_type=h.get("Content-Type"),
            content_encoding=h.get("Content-Encoding"), cache_control=h.get("Cache-Control"),
            pinned=svc.pin_requests.pop(t.key, False),
        )
        svc.store.commit(self.tmp, entry)
        self.path = svc.store.body_path(entry)  # same event-loop step as the rename: no reader sees a gap
        self.stored = True
        self.entry = entry
        svc.evict_to_fit()

    def _fail(self, e: UpstreamError) -> None:
        self.error = e
        if self.outcome == "pending":
            self.outcome = "error"
        self.svc.stats.upstream_errors += 1
        if e.kind == "verify":
            self.svc.stats.verify_failures += 1
        else:
            self.svc.mark_down(self.target.origin, e.message)
        log.warning("download of %s failed: %s", self.target.key, e.message)


@dataclass
class CacheService:
    """Everything a cache process shares between requests; one per app (tests build one per test)."""

    store: Store
    upstream: Upstream
    origins: dict[str, str]
    default_ttl_s: float
    max_bytes: int
    backoff_s: float
    stats: Stats = field(default_factory=Stats)
    inflight: dict[str, Download] = field(default_factory=dict)
    serving: Counter[str] = field(default_factory=Counter)
    health: dict[str, OriginHealth] = field(default_factory=dict)
    pin_requests: dict[str, bool] = field(default_factory=dict)
    _background: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    def create(
        cls, directory: Path, origins: dict[str, str], *, default_ttl_s: float, max_bytes: int,
        backoff_s: float, stall_timeout_s: float,
    ) -> CacheService:
        return cls(Store(directory), Upstream(stall_timeout_s), dict(origins), default_ttl_s, max_bytes, backoff_s)

    async def close(self) -> None:
        for dl in list(self.inflight.values()):
            dl.task.cancel()
        for dl in list(self.inflight.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await dl.task
        for task in list(self._background):
            task.cancel()
        await self.upstream.close()
        self.store.close()

    # -- health ----------------------------------------------------------------------------------------

    def mark_down(self, origin: str, reason: str) -> None:
        h = self.health.setdefault(origin, OriginHealth())
        h.down_until = time.time() + self.backoff_s
        h.last_error = reason
        h.failures += 1

    def mark_healthy(self, origin: str) -> None:
        h = self.health.get(origin)
        if h is not None:
            h.down_until = 0.0

    def is_down(self, origin: str) -> bool:
        h = self.health.get(origin)
        return h is not None and not h.healthy(time.time())

    # -- downloads -------------------------------------------------------------------------------------

    def download(
        self, target: Target, stale: Entry | None = None, expect: Expect | None = None
    ) -> tuple[Download, bool]:
        """The in-flight download for `target`, started if needed; second item: joined an existing one."""
        dl = self.inflight.get(target.key)
        if dl is not None:
            return dl, True
        dl = Download(self, target, stale, expect)
        self.inflight[target.key] = dl
        return dl, False

    def revalidate_in_background(self, target: Target, entry: Entry) -> None:
        """stale-while-revalidate: refresh without making anyone wait (coalesced like any download)."""
        self.download(target, entry)

    def release_serving(self, key: str) -> None:
        """One response for `key` finished (keys at zero are dropped: the counter must not grow forever)."""
        self.serving[key] -= 1
        if self.serving[key] <= 0:
            del self.serving[key]

    # -- eviction --------------------------------------------------------------------------------------

    def evict_to_fit(self) -> None:
        """Evict least-recently-used entries until under max_bytes; pinned/in-flight/being-served stay."""
        if self.store.total_bytes <= self.max_bytes:
            return
        protected = set(self.inflight) | set(self.serving)
        for entry in self.store.eviction_candidates(protected):
            if self.store.total_bytes <= self.max_bytes:
                break
            self.store.remove(entry.key)
            self.stats.evictions += 1
            log.info("evicted %s (%d bytes)", entry.key, entry.size)

    def evict(self, key: str) -> bool:
        """Admin eviction of one object (refused while it downloads)."""
        if key in self.inflight:
            return False
        return self.store.remove(key) is not None

    # -- reporting -------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        return {
            **asdict(self.stats),
            "upstream_requests": self.upstream.requests,
            "objects": len(self.store),
            "bytes_stored": self.store.total_bytes,
            "max_bytes": self.max_bytes,
            "in_flight": len(self.inflight),
            "pinned": sum(1 for e in self.store.entries() if e.pinned),
            "upstreams": {
                name: {
                    "healthy": not self.is_down(name),
                    "retry_in_s": round(max(0.0, self.health[name].down_until - now), 1)
                    if name in self.health else 0.0,
                    "last_error": self.health[name].last_error if name in self.health else "",
                }
                for name in self.origins
            },
        }
