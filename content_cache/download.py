"""One in-flight upstream fetch (or conditional revalidation) of one response, streamed from a growing file.

The download writes upstream's bytes to a temp file and announces progress; every client whose request the
response may answer (the "dozen students in the same second") reads the same growing file, so there is one
upstream request and everyone gets bytes as they arrive (content_cache.inflight says who may). It is an
independent task: it finishes even if the client that started it leaves. With several worker processes it
first takes the object's lock and leads, or follows another worker's download (content_cache.coordination).
The exchange with upstream itself is content_cache.fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from content_cache.coordination import Follower, Outcome, Progress, claim_partial, read_record
from content_cache.entry import Entry
from content_cache.fetch import fetch
from content_cache.forward import Want
from content_cache.http import satisfies
from content_cache.inflight import InFlight
from content_cache.locks import ObjectLock
from content_cache.paths import Target
from edge.exc import UpstreamError

if TYPE_CHECKING:
    from content_cache.service import CacheService

log = logging.getLogger(__name__)


@dataclass
class Expect:
    """What a prefetch manifest promises about an object; a mismatch is never committed."""

    sha256: str | None = None
    size: int | None = None

    def met_by(self, entry: Entry) -> bool:
        return self.sha256 in (None, entry.sha256) and self.size in (None, entry.size)


class Download(InFlight):
    """The task that fills an InFlight: it leads (fetches) or follows another worker, and records the end."""

    def __init__(self, svc: CacheService, target: Target, want: Want, stale: Entry | None, expect: Expect | None,
                 key: str | None) -> None:
        super().__init__(svc, target, want, key)
        self.stale = stale  # the stored response being revalidated (its validators go upstream)
        self.expect = expect or Expect()
        self.requested_at = 0.0  # when the request went upstream (RFC 9111 §4.2.3 request_time)
        self.wfd = -1  # leader: the temp file being written
        self._lock: ObjectLock | None = None
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"download {target.key}")

    async def _run(self) -> None:
        svc = self.svc
        cancelled = False
        try:
            if svc.locks is None or self.key is None:
                await fetch(self)
            else:
                self._lock = svc.locks.lock(self.key)
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
        except OSError as e:  # our own disk: full, read-only... (not the origin's fault: no back-off)
            self.fail(UpstreamError("short", f"cache disk error: {e.strerror}"))
        except Exception:  # a bug: logged with its traceback, and every waiter still gets an answer (502)
            log.exception("download of %s failed unexpectedly", self.target.key)
            self.fail(UpstreamError("invalid", "the cache could not handle upstream's response"))
        finally:
            if self.wfd >= 0:
                os.close(self.wfd)
                self.wfd = -1
            if self.outcome == "pending":
                self.outcome = "error"
                self.error = self.error or UpstreamError("down", "the download ended without an answer")
            if self._lock is not None:
                if self._lock.held and not cancelled:
                    with contextlib.suppress(OSError):
                        self._lock.write_meta(self._outcome().to_json())
                self._lock.close()  # cancelled: no outcome published, so another worker takes over
            if self.key is not None and svc.inflight.get(self.key) is self:
                del svc.inflight[self.key]
            self.finished.set()
            self.ready.set()
            self.notify()
            if self.readers <= 0:
                self.cleanup()

    def _outcome(self) -> Outcome:
        return Outcome(self.source, os.getpid(), self.outcome, self.stored, self.status, self.headers, self.total,
                       self.error, self.entry.key if self.entry is not None else "")

    async def lead(self) -> None:
        """Holding the lock: fetch, unless another worker has just stored a response that answers us."""
        lock = self._lock
        assert lock is not None and lock.held
        record = read_record(lock)
        partial = None
        if isinstance(record, Progress):
            # A leader died mid-download: its temp file is nobody's now. Ours, to resume from if usable.
            partial = claim_partial(self.svc.store, record, self.tmp)
        lock.clear_meta()
        current = self.svc.store.reload_url(self.target.key, self.want.headers)
        now = time.time()
        if current is not None and self.expect.met_by(current):
            if satisfies(self.want.directives, current.fresh_until, current.age(now), now):
                self.finish_from_entry(current, f"index:{current.body}")
                if partial is not None:
                    self.tmp.unlink(missing_ok=True)  # the claimed partial: not needed after all
                return
            if self.outcome != "body":
                self.stale = current  # the newest validators, whoever stored them
        elif self.outcome != "body":
            self.stale = None
        await fetch(self, partial)

    def publish(self) -> None:
        """Tell the other workers what we are receiving (they stream our temp file)."""
        if self._lock is not None and self._lock.held:
            self._lock.write_meta(Progress(self.source, os.getpid(), self.tmp.name, self.status, self.headers,
                                           self.total, self.fresh_until, self.initial_age, self.shareable,
                                           self.vary, self.vary_key).to_json())

    def fail(self, e: UpstreamError) -> None:
        self.error = e
        if self.outcome == "pending":
            self.outcome = "error"
        self.svc.stats.upstream_errors += 1
        if e.kind == "verify":
            self.svc.stats.verify_failures += 1
        else:
            # Only a connection that cannot be made backs the whole origin off; a stall, a reset or a broken
            # body is this request's trouble (it is still counted and shown in the origin's health).
            self.svc.record_failure(self.target.origin, e.message, back_off=e.kind == "down")
        log.warning("download of %s failed: %s", self.target.key, e.message)
