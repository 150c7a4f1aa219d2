"""One in-flight upstream fetch (or conditional revalidation) of one object, streamed from a growing file.

The download writes upstream's bytes to a temp file and announces progress; every client asking for that
object meanwhile (the "dozen students in the same second") reads the same growing file, so there is exactly
one upstream request and everyone gets bytes as they arrive. It is an independent task: it finishes even if
the client that started it leaves. With several worker processes it first takes the object's lock and leads,
or follows another worker's download (content_cache.coordination).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from content_cache.coordination import (
    Follower,
    Outcome,
    OutcomeKind,
    Partial,
    Progress,
    claim_partial,
    read_record,
)
from content_cache.http import freshness, parse_http_date
from content_cache.locks import ObjectLock
from content_cache.paths import Target
from content_cache.store import Entry
from content_cache.upstream import UpstreamResponse
from edge.exc import UpstreamError

if TYPE_CHECKING:
    from content_cache.service import CacheService

log = logging.getLogger(__name__)
PASSTHROUGH_LIMIT = 64 * 1024  # non-200 upstream answers (404 pages...) are relayed, up to this size


@dataclass
class Expect:
    """What a prefetch manifest promises about an object; a mismatch is never committed."""

    sha256: str | None = None
    size: int | None = None


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


class Download:
    """The state every reader of one object in flight shares, and the task that fills it."""

    def __init__(self, svc: CacheService, target: Target, stale: Entry | None, expect: Expect | None) -> None:
        self.svc = svc
        self.target = target
        self.stale = stale
        self.expect = expect or Expect()
        self.outcome: OutcomeKind = "pending"
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

    # -- what readers look at ---------------------------------------------------------------------------

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

    # -- the task ---------------------------------------------------------------------------------------

    async def _run(self) -> None:
        svc, t = self.svc, self.target
        cancelled = False
        try:
            if svc.locks is None:
                await self._fetch()
            else:
                self._lock = svc.locks.lock(t.key)
                if self._lock.try_acquire():
                    await self.lead()
                else:
                    self.followed = True
                    await Follower(self, self._lock).run()
        except UpstreamError as e:
            self.fail(e)
        except asyncio.CancelledError:
            cancelled = True
            self.error = UpstreamError("down", "download cancelled (cache shutting down)")
            raise
        except OSError as e:  # our own disk: full, read-only...
            self.fail(UpstreamError("down", f"cache disk error: {e.strerror}"))
        finally:
            if self._wfd >= 0:
                os.close(self._wfd)
                self._wfd = -1
            if self.outcome == "pending":
                self.outcome = "error" if self.error else "passthrough"
            if self._lock is not None:
                if self._lock.held and not cancelled:
                    with contextlib.suppress(OSError):
                        self._lock.write_meta(self._outcome().to_json())
                self._lock.close()  # cancelled: no outcome published, so another worker takes over
            svc.inflight.pop(t.key, None)
            self.finished.set()
            self.ready.set()
            self._notify()
            if self.readers <= 0:
                self._cleanup()

    def _outcome(self) -> Outcome:
        return Outcome(self.source, os.getpid(), self.outcome, self.stored, self.status, self.headers, self.total,
                       self.passthrough_body if self.outcome == "passthrough" else b"", self.error)

    async def lead(self) -> None:
        """Holding the lock: fetch, unless another worker has just finished the object."""
        lock = self._lock
        assert lock is not None and lock.held
        record = read_record(lock)
        partial = None
        if isinstance(record, Progress):
            # A leader died mid-download: its temp file is nobody's now. Ours, to resume from if usable.
            partial = claim_partial(self.svc.store, record, self.tmp)
        lock.clear_meta()
        current = self.svc.store.reload(self.target.key)
        if current is not None and self.expect.sha256 in (None, current.sha256) and self.expect.size in (
                None, current.size):
            if time.time() < current.fresh_until:
                self.finish_from_entry(current, f"index:{current.body}")
                if partial is not None:
                    self.tmp.unlink(missing_ok=True)  # the claimed partial: not needed after all
                return
            if self.outcome != "body":
                self.stale = current  # the newest validators, whoever stored them
        elif self.outcome != "body":
            self.stale = None
        await self._fetch(partial)

    def _publish(self) -> None:
        if self._lock is not None and self._lock.held:
            self._lock.write_meta(Progress(self.source, os.getpid(), self.tmp.name, self.status, self.headers,
                                           self.total).to_json())

    # -- talking to upstream ----------------------------------------------------------------------------

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
                self.svc.store.remove(self.target.key)  # gone upstream: stop serving it
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

    # -- following another worker (called by coordination.Follower) -------------------------------------

    def follow_file(self, fd: int, progress: Progress) -> None:
        """Readers now get the bytes of the leader's temp file `fd` (ours to close)."""
        self._close_src()
        self._src_fd = fd
        self.source = progress.id
        self.status = progress.status
        self.headers = progress.headers
        self.total = progress.total
        self.received = os.fstat(fd).st_size
        self.outcome = "body"
        self.ready.set()
        self._notify()

    def source_grew(self) -> bool:
        """Whether the followed file has more bytes than readers were told (and tell them)."""
        if self._src_fd < 0:
            return False
        size = os.fstat(self._src_fd).st_size
        if size <= self.received:
            return False
        self.received = size
        self._notify()
        return True

    def finish_followed_file(self, total: int | None) -> bool:
        """The leader streamed a response it did not store: usable if we hold all of its bytes."""
        if self._src_fd < 0:
            return False
        size = os.fstat(self._src_fd).st_size
        if total is not None and size != total:
            return False
        self.total = self.received = size
        self._notify()
        return True

    def finish_from_entry(self, entry: Entry, source: str) -> None:
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

    # -- endings ----------------------------------------------------------------------------------------

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

    def fail(self, e: UpstreamError) -> None:
        self.error = e
        if self.outcome == "pending":
            self.outcome = "error"
        self.svc.stats.upstream_errors += 1
        if e.kind == "verify":
            self.svc.stats.verify_failures += 1
        else:
            self.svc.mark_down(self.target.origin, e.message)
        log.warning("download of %s failed: %s", self.target.key, e.message)
