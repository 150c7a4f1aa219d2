"""The cache's brain: lookups, coalesced downloads streamed from a growing file, health, eviction, stats.

One `Download` per object in flight. It writes upstream's bytes to a temp file and announces progress;
every client asking for that object meanwhile (the "dozen students in the same second") reads the same
growing file, so there is exactly one upstream request and everyone gets bytes as they arrive. The download
is an independent task: it finishes even if the client that started it leaves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from multidict import CIMultiDict

from content_cache.http import freshness, is_strong, parse_http_date
from content_cache.locks import ObjectLock, ObjectLocks
from content_cache.paths import Target
from content_cache.store import Entry, Store, pid_alive
from content_cache.upstream import Upstream, UpstreamError, UpstreamResponse
from content_cache.workerstats import merge, read_worker_stats, write_worker_stats

log = logging.getLogger(__name__)

Outcome = Literal["pending", "body", "not_modified", "passthrough", "error"]
PASSTHROUGH_LIMIT = 64 * 1024  # non-200 upstream answers (404 pages...) are relayed, up to this size
FOLLOW_POLL_S = 0.005  # how often a follower looks at the leader's temp file and lock (a few syscalls)


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
    resumed: int = 0  # takeovers that finished a dead worker's partial download with a Range request


@dataclass
class OriginHealth:
    down_until: float = 0.0
    last_error: str = ""
    last_error_at: float = 0.0
    failures: int = 0

    def healthy(self, now: float) -> bool:
        return now >= self.down_until


@dataclass
class Partial:
    """The first `size` bytes of a `total`-byte representation (strong `etag`) that a dead leader wrote."""

    size: int
    total: int
    etag: str
    headers: CIMultiDict[str]

    def matches(self, headers: Any) -> bool:
        """Whether a 206 is the rest of this very representation."""
        return bool(headers.get("Content-Range") == f"bytes {self.size}-{self.total - 1}/{self.total}"
                    and headers.get("ETag", self.etag) == self.etag)


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


@dataclass
class Expect:
    """What a prefetch manifest promises about an object; a mismatch is never committed."""

    sha256: str | None = None
    size: int | None = None


class Download:
    """One in-flight upstream fetch (or conditional revalidation) of one object.

    With several worker processes (`svc.locks` set) the download first takes the object's lock: the holder
    fetches from upstream (leader); any other worker follows the leader's growing temp file, and takes the
    lock over if the leader dies before publishing an outcome.
    """

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
        self.source = ""  # which download's bytes readers get; a change means a different file (takeover)
        self.entry: Entry | None = None  # committed (or refreshed) entry once finished
        self.stored = False
        self.readers = 0
        self.ready = asyncio.Event()  # outcome known (headers, 304, error)
        self.finished = asyncio.Event()
        self._progress = asyncio.Event()
        self._wfd = -1  # leader: the temp file being written
        self._src_fd = -1  # follower: the leader's temp file (readers get dups: it may be renamed or unlinked)
        self._lock: ObjectLock | None = None
        self.followed = False  # another worker process held the lock: its download, not ours
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

    @property
    def rep(self) -> tuple[str | None, int | None]:
        """What a reader that already sent headers relies on: the representation's ETag and length."""
        return self.etag, self.total

    def progress(self) -> asyncio.Event:
        """An event set at the next progress (bytes, end or failure): grab it before checking state."""
        return self._progress

    def _notify(self) -> None:
        ev, self._progress = self._progress, asyncio.Event()
        ev.set()

    def open_reader(self) -> int:
        """A read fd on the bytes of the current source (the caller closes it)."""
        if self._src_fd >= 0:
            return os.dup(self._src_fd)
        return os.open(self.path, os.O_RDONLY)

    def release_reader(self) -> None:
        self.readers -= 1
        if self.readers <= 0 and self.finished.is_set():
            self._cleanup()

    def _cleanup(self) -> None:
        if not self.stored:
            self.tmp.unlink(missing_ok=True)
        self._close_src()

    def _close_src(self) -> None:
        if self._src_fd >= 0:
            os.close(self._src_fd)
            self._src_fd = -1

    async def _run(self) -> None:
        svc, t = self.svc, self.target
        cancelled = False
        try:
            if svc.locks is None:
                await self._fetch()
            else:
                self._lock = svc.locks.lock(t.key)
                if self._lock.try_acquire():
                    await self._lead()
                else:
                    await self._follow()
        except UpstreamError as e:
            self._fail(e)
        except asyncio.CancelledError:
            cancelled = True
            self.error = UpstreamError("down", "download cancelled (cache shutting down)")
            raise
        except OSError as e:  # our own disk: full, read-only...
            self._fail(UpstreamError("down", f"cache disk error: {e.strerror}"))
        finally:
            if self._wfd >= 0:
                os.close(self._wfd)
                self._wfd = -1
            if self.outcome == "pending":
                self.outcome = "error" if self.error else "passthrough"
            if self._lock is not None:
                if self._lock.held and not cancelled:
                    with contextlib.suppress(OSError):
                        self._lock.write_meta(self._outcome_meta())
                self._lock.close()  # cancelled: no outcome published, so another worker takes over
            svc.inflight.pop(t.key, None)
            self.finished.set()
            self.ready.set()
            self._notify()
            if self.readers <= 0:
                self._cleanup()

    # -- leader: this process talks to upstream --------------------------------------------------------

    async def _lead(self) -> None:
        """Holding the lock: fetch, unless another worker has just finished the object."""
        lock = self._lock
        assert lock is not None and lock.held
        meta = lock.read_meta()
        partial = None
        if meta is not None and "outcome" not in meta and isinstance(meta.get("tmp"), str):
            # A leader died mid-download: its temp file is nobody's now. Ours, to resume from if usable.
            partial = self._claim_partial(meta)
        lock.clear_meta()
        current = self.svc.store.reload(self.target.key)
        if current is not None and self.expect.sha256 in (None, current.sha256) and self.expect.size in (
                None, current.size):
            if time.time() < current.fresh_until:
                self._finish_from_entry(current, f"index:{current.body}")
                if partial is not None:
                    self.tmp.unlink(missing_ok=True)  # the claimed partial: not needed after all
                return
            if self.outcome != "body":
                self.stale = current  # the newest validators, whoever stored them
        elif self.outcome != "body":
            self.stale = None
        await self._fetch(partial)

    def _claim_partial(self, meta: dict[str, Any]) -> Partial | None:
        """Take a dead leader's temp file over (renamed to our temp name) if a Range request can finish it.

        Usable when the leader was receiving a 200 with a strong ETag and a known length, and the file holds
        a proper prefix of it (its bytes were written in order; a process crash does not lose page-cache
        writes). The rename makes it ours at once: `check` and the pool parent remove only dead writers' names.
        """
        old = self.svc.store.tmp / Path(str(meta["tmp"])).name
        headers: CIMultiDict[str] = CIMultiDict((str(k), str(v)) for k, v in meta.get("headers", []))
        total, etag = meta.get("total"), headers.get("ETag")
        if meta.get("status") != 200 or not isinstance(total, int) or not is_strong(etag) or (
                "Content-Range" in headers):
            old.unlink(missing_ok=True)
            return None
        try:
            os.rename(old, self.tmp)
            size = os.stat(self.tmp).st_size
        except FileNotFoundError:
            return None  # removed meanwhile (check, the pool parent): a full download
        if not 0 < size < total:
            self.tmp.unlink(missing_ok=True)
            return None
        assert etag is not None
        return Partial(size, total, etag, headers)

    def _publish(self) -> None:
        if self._lock is not None and self._lock.held:
            self._lock.write_meta({
                "id": self.source, "pid": os.getpid(), "tmp": self.tmp.name, "status": self.status,
                "headers": list(self.headers.items()), "total": self.total,
            })

    def _outcome_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.source, "pid": os.getpid(), "outcome": self.outcome,
                               "stored": self.stored, "status": self.status, "headers": list(self.headers.items()),
                               "total": self.total}
        if self.outcome == "passthrough":
            out["body"] = base64.b64encode(self.passthrough_body).decode()
        if self.error is not None:
            out["error"] = [self.error.kind, self.error.message]
        return out

    async def _fetch(self, partial: Partial | None = None) -> None:
        """Fetch from upstream: conditional when we hold a stale copy, a Range request to finish `partial`."""
        svc, t = self.svc, self.target
        req: dict[str, str] = {"Accept-Encoding": "identity"}
        if partial is not None:
            # If-Range: the rest only if it is still the same representation, else the whole new one (200).
            req["Range"] = f"bytes={partial.size}-"
            req["If-Range"] = partial.etag
        elif self.stale is not None:
            if self.stale.etag:
                req["If-None-Match"] = self.stale.etag
            if self.stale.last_modified:
                req["If-Modified-Since"] = self.stale.last_modified
        again = False
        async with svc.upstream.open(t.url, req) as up:
            self.status = up.status
            if up.status >= 500:
                raise UpstreamError("status", f"upstream answered {up.status}")
            svc.mark_healthy(t.origin)
            if partial is not None:
                if up.status == 206 and partial.matches(up.headers):
                    self.status = 200  # what the object is; the 206 only carried its rest
                    await self._receive(up, partial)
                    return
                self.tmp.unlink(missing_ok=True)  # not resumable: from byte 0
                if up.status != 200:
                    again = up.status in (206, 304, 412, 416)  # a range we cannot use: ask for the whole
            if not again:
                await self._answer(up)
        if again:
            log.info("could not resume %s (upstream answered %d to the range): downloading it whole",
                     t.key, self.status)
            await self._fetch()

    async def _answer(self, up: UpstreamResponse) -> None:
        """Handle upstream's answer to a plain or conditional request."""
        svc, t = self.svc, self.target
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
        await self._receive(up, None)

    async def _receive(self, up: UpstreamResponse, partial: Partial | None) -> None:
        """Write the body to our temp file (after `partial`'s bytes when resuming), verify, commit."""
        svc = self.svc
        loop = asyncio.get_running_loop()
        if partial is None:
            self.headers = CIMultiDict(up.headers)
            length = up.headers.get("Content-Length")
            self.total = int(length) if length and length.isdigit() else None
            self._wfd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            start = 0
        else:
            # The representation's headers are the 200's; caching headers as fresh as the 206's.
            self.headers = partial.headers.copy()
            for name in ("Date", "Age"):
                self.headers.popall(name, None)
            for name in ("Cache-Control", "Expires", "Date", "Age", "Last-Modified"):
                if name in up.headers:
                    self.headers[name] = up.headers[name]
            self.total = partial.total
            self._wfd = os.open(self.tmp, os.O_WRONLY)
            start = partial.size
            os.ftruncate(self._wfd, start)
            os.lseek(self._wfd, start, os.SEEK_SET)
            svc.stats.resumed += 1
            log.info("resuming %s at byte %d of %d", self.target.key, start, partial.total)
        fr = freshness(self.headers, svc.default_ttl_s)
        # From here readers read our temp file (after a takeover: instead of the dead leader's).
        self._close_src()
        self.path = self.tmp
        self.source = self.tmp.name
        self.received = start
        self.outcome = "body"
        self._publish()
        self.ready.set()
        self._notify()
        fd = self._wfd
        sha = hashlib.sha256()
        if start:
            sha = await loop.run_in_executor(None, _hash_prefix, self.tmp, start)
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
        await loop.run_in_executor(None, os.fsync, fd)
        os.close(fd)
        self._wfd = -1
        self.total = self.received
        if fr.store:
            self._commit(digest, fr.fresh_until, fr.swr_s, fr.sie_s)

    # -- follower: another worker holds the lock and talks to upstream ---------------------------------

    async def _follow(self) -> None:
        """Stream the leader's growing temp file; take over if it dies without an outcome."""
        lock = self._lock
        assert lock is not None
        self.followed = True
        loop = asyncio.get_running_loop()
        tmp_dir = self.svc.store.tmp
        last_change = loop.time()
        while True:
            if lock.try_acquire():
                meta = lock.read_meta()
                if meta is not None and "outcome" in meta and self._adopt_outcome(meta):
                    return
                await self._take_over()
                return
            meta = lock.read_meta()
            if (meta is not None and "outcome" not in meta and meta.get("id") != self.source
                    and isinstance(meta.get("tmp"), str) and pid_alive(int(meta.get("pid", 0)))):
                try:
                    fd = os.open(tmp_dir / Path(meta["tmp"]).name, os.O_RDONLY)
                except FileNotFoundError:
                    pass  # already renamed into place: the outcome follows
                else:
                    self._adopt_progress(meta, fd)
                    last_change = loop.time()
            if self._src_fd >= 0:
                size = os.fstat(self._src_fd).st_size
                if size > self.received:
                    self.received = size
                    self._notify()
                    last_change = loop.time()
            if loop.time() - last_change > self.svc.follow_timeout_s:
                raise UpstreamError("stall", f"the worker downloading this object made no progress for "
                                             f"{self.svc.follow_timeout_s:g} s")
            await asyncio.sleep(FOLLOW_POLL_S)

    def _adopt_progress(self, meta: dict[str, Any], fd: int) -> None:
        self._close_src()
        self._src_fd = fd
        self.source = str(meta["id"])
        self.status = int(meta.get("status", 200))
        self.headers = CIMultiDict((str(k), str(v)) for k, v in meta.get("headers", []))
        total = meta.get("total")
        self.total = total if isinstance(total, int) else None
        self.received = os.fstat(fd).st_size
        self.outcome = "body"
        self.ready.set()
        self._notify()

    def _adopt_outcome(self, meta: dict[str, Any]) -> bool:
        """Take the leader's published outcome; False when it is unusable here (then we fetch ourselves)."""
        kind = meta["outcome"]
        source = str(meta.get("id", ""))
        if kind in ("body", "not_modified"):
            entry = self.svc.store.reload(self.target.key)
            if entry is not None and (kind == "not_modified" or meta.get("stored")):
                self._finish_from_entry(entry, source if kind == "body" else f"index:{entry.body}")
                return True
            # Not stored (no-store): usable only if we hold the whole temp file it was streamed from.
            if kind != "body" or source != self.source or self._src_fd < 0:
                return False
            size = os.fstat(self._src_fd).st_size
            if size != meta.get("total", size):
                return False
            self.total = self.received = size
            self._notify()
            return True
        if kind == "passthrough":
            if self.outcome == "body":
                return False
            self.status = int(meta.get("status", 502))
            self.headers = CIMultiDict((str(k), str(v)) for k, v in meta.get("headers", []))
            self.passthrough_body = base64.b64decode(meta.get("body", ""))
            self.outcome = "passthrough"
            return True
        if kind == "error" and isinstance(meta.get("error"), list):
            err_kind, message = meta["error"]
            if err_kind in ("down", "stall", "status", "short", "verify"):
                self._fail(UpstreamError(err_kind, str(message)))
                return True
        return False

    async def _take_over(self) -> None:
        """The leader went away without an outcome: we hold the lock now, so we fetch."""
        was_body = self.outcome == "body"
        log.warning("taking over the download of %s (the worker downloading it went away)", self.target.key)
        await self._lead()
        if was_body and self.outcome != "body":
            raise UpstreamError("status", "the object changed upstream while it was being downloaded")

    def _finish_from_entry(self, entry: Entry, source: str) -> None:
        """The object is committed (by another worker): serve readers from the committed body."""
        if self.outcome != "body" or source != self.source:
            # Readers of another file (if any) switch to the body when the representation is the same.
            self._close_src()
            self.path = self.svc.store.body_path(entry)
            self.source = source
        self.headers = CIMultiDict((k, v) for k, v in (
            ("ETag", entry.etag), ("Last-Modified", entry.last_modified), ("Content-Type", entry.content_type),
            ("Content-Encoding", entry.content_encoding), ("Cache-Control", entry.cache_control)) if v)
        self.total = self.received = entry.size
        self.status = 200
        self.entry = entry
        self.stored = True
        self.outcome = "body"
        self._notify()

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
    # Set when several worker processes share the cache dir: downloads coordinate through per-object locks.
    locks: ObjectLocks | None = None
    worker: int = 0
    follow_timeout_s: float = 70.0  # a follower gives up on a leader that shows no progress for this long
    # Set for worker processes (`workers > 1`): where each publishes its counters for the others' stats.
    stats_dir: Path | None = None
    _published: str = ""
    _background: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    def create(
        cls, directory: Path, origins: dict[str, str], *, default_ttl_s: float, max_bytes: int,
        backoff_s: float, stall_timeout_s: float, shared: bool = False, worker: int = 0,
    ) -> CacheService:
        store = Store(directory)
        return cls(store, Upstream(stall_timeout_s), dict(origins), default_ttl_s, max_bytes, backoff_s,
                   locks=ObjectLocks(store.dir / "locks") if shared else None, worker=worker,
                   # the leader's own stall timeout fires first; this only catches a leader that hangs
                   follow_timeout_s=2 * stall_timeout_s + 10.0)

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
        h.last_error_at = time.time()
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
        if self.locks is not None:
            # Other workers commit, pin and evict too: count and choose from the whole shared index. (A body
            # another worker is sending stays readable through its open fd after the unlink.)
            self.store.sync()
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

    def worker_report(self, now: float) -> dict[str, Any]:
        """This process's own counters and upstream health (what it publishes for the other workers)."""
        return {
            "worker": self.worker,
            "pid": os.getpid(),
            "written_at": now,
            "counters": {**asdict(self.stats), "upstream_requests": self.upstream.requests,
                         "in_flight": len(self.inflight)},
            "upstreams": {name: asdict(h) for name, h in self.health.items()},
        }

    def publish_stats(self, *, force: bool = False) -> bool:
        """Write this worker's report to `stats_dir` if it changed (or `force`); True if written."""
        if self.stats_dir is None:
            return False
        report = self.worker_report(time.time())
        key = json.dumps({k: v for k, v in report.items() if k != "written_at"}, sort_keys=True)
        if key == self._published and not force:
            return False  # nothing new: spare the SD card a write
        write_worker_stats(self.stats_dir, self.worker, report)
        self._published = key
        return True

    def snapshot(self) -> dict[str, Any]:
        """Stats of the whole cache: with several workers, every live worker's counters summed.

        Other workers' figures come from their published reports (at most about a second old); this
        worker's are live. `workers` lists each worker's own figures.
        """
        now = time.time()
        if self.locks is not None:
            self.store.sync()  # objects/bytes of the whole shared cache, not only what this worker has seen
        reports = [self.worker_report(now)]
        if self.stats_dir is not None:
            reports += [r for r in read_worker_stats(self.stats_dir, pid_alive)
                        if r["worker"] != self.worker and r.get("pid") != os.getpid()]
        merged = merge(reports, self.origins, now)
        return {
            **merged["totals"],
            "worker": self.worker,  # the worker that answered
            "pid": os.getpid(),
            "objects": len(self.store),
            "bytes_stored": self.store.total_bytes,
            "max_bytes": self.max_bytes,
            "pinned": sum(1 for e in self.store.entries() if e.pinned),
            "upstreams": merged["upstreams"],
            "workers": merged["workers"],
        }
