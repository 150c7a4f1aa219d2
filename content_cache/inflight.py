"""One response in flight as its readers see it: status and fields, how many bytes are in which file, whether
it may answer a request other than the one that caused it, and how it ended.

The file grows while the response arrives (our own download's temp file, or another worker's that we follow)
and becomes the committed body; every reader streams from it (content_cache.streaming). The task that fills
it is content_cache.download.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING

from multidict import CIMultiDict

from content_cache.coordination import OutcomeKind, Progress
from content_cache.entry import Entry, secondary_part
from content_cache.forward import Want
from content_cache.http import current_age, is_strong, parse_http_date, satisfies, secondary_key
from content_cache.paths import Target
from edge.exc import UpstreamError

if TYPE_CHECKING:
    from content_cache.service import CacheService


class InFlight:
    """The state every reader of one response in flight shares."""

    def __init__(self, svc: CacheService, target: Target, want: Want, key: str | None) -> None:
        self.svc = svc
        self.target = target
        self.want = want  # the request it is fetched for (its fields went upstream)
        self.key = key  # the in-flight (and lock) key it is registered under; None: nobody joins it
        self.outcome: OutcomeKind = "pending"
        self.error: UpstreamError | None = None
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()  # the response's end-to-end fields, as clients get them
        self.total: int | None = None
        self.received = 0
        self.tmp = svc.store.new_temp()
        self.path = self.tmp  # what readers open: the temp file, then the committed body
        self.source = ""  # which download's bytes readers get; a change means a different file (takeover)
        self.entry: Entry | None = None  # committed (or refreshed) entry once finished
        self.stored = False
        # Known once the response's fields are: may it answer other requests, and which of them (Vary)?
        self.shareable = False
        self.vary: tuple[str, ...] | None = ()  # None: `Vary: *`
        self.vary_key = ""  # the fetching request's secondary key for `vary`
        self.fresh_until = 0.0
        self.initial_age = 0.0
        self.received_at = 0.0  # when the response's fields arrived
        self.readers = 0
        self.ready = asyncio.Event()  # outcome known (fields, 304, error)
        self.finished = asyncio.Event()
        self._progress = asyncio.Event()
        self._src_fd = -1  # follower: the leader's temp file (readers get dups: it may be renamed or unlinked)
        self.followed = False  # another worker process held the lock: its download, not ours

    # -- which requests it answers ------------------------------------------------------------------------

    def serves(self, want: Want) -> bool:
        """Whether this response may answer `want`, a request other than the one it was fetched for: only a
        response a shared cache could store, and (Vary) only a request it would have been selected for."""
        if self.outcome != "body":
            return True  # an error, or the stored response it refreshed or fell back to: same for everyone
        if not self.shareable or self.vary is None:
            return False
        return not self.vary or secondary_key(self.vary, want.headers) == self.vary_key

    def joinable(self, want: Want, now: float) -> bool:
        """Whether `want`, arriving now, may wait for this download instead of fetching on its own: always
        before the response exists (it will be newer than the request), afterwards as a stored response could."""
        if self.outcome == "pending":
            return True
        if self.finished.is_set() or self.outcome != "body":
            return False
        return self.serves(want) and satisfies(want.directives, self.fresh_until, self.age(now), now)

    def age(self, now: float) -> int:
        return current_age(self.initial_age, self.received_at, now)

    # -- what readers look at -----------------------------------------------------------------------------

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

    def notify(self) -> None:
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
            self.cleanup()

    def cleanup(self) -> None:
        if not self.stored:
            self.tmp.unlink(missing_ok=True)
        self.close_source()

    def close_source(self) -> None:
        if self._src_fd >= 0:
            os.close(self._src_fd)
            self._src_fd = -1

    def described(self, fresh_until: float, initial_age: float, shareable: bool, vary: tuple[str, ...] | None,
                  vary_key: str) -> None:
        """The response's caching facts, once its fields are known (ours, or the leader's in Progress)."""
        self.fresh_until, self.initial_age, self.shareable = fresh_until, initial_age, shareable
        self.vary, self.vary_key = vary, vary_key
        self.received_at = time.time()

    # -- following another worker (called by coordination.Follower) -----------------------------------------

    def follow_file(self, fd: int, progress: Progress) -> None:
        """Readers now get the bytes of the leader's temp file `fd` (ours to close)."""
        self.close_source()
        self._src_fd = fd
        self.source = progress.id
        self.status = progress.status
        self.headers = progress.headers
        self.total = progress.total
        self.described(progress.fresh_until, progress.initial_age, progress.shareable, progress.vary,
                       progress.vary_key)
        self.received = os.fstat(fd).st_size
        self.outcome = "body"
        self.ready.set()
        self.notify()

    def source_grew(self) -> bool:
        """Whether the followed file has more bytes than readers were told (and tell them)."""
        if self._src_fd < 0:
            return False
        size = os.fstat(self._src_fd).st_size
        if size <= self.received:
            return False
        self.received = size
        self.notify()
        return True

    def finish_followed_file(self, total: int | None) -> bool:
        """The leader streamed a response it did not store: usable if we hold all of its bytes."""
        if self._src_fd < 0:
            return False
        size = os.fstat(self._src_fd).st_size
        if total is not None and size != total:
            return False
        self.total = self.received = size
        self.notify()
        return True

    def finish_from_entry(self, entry: Entry, source: str, outcome: OutcomeKind = "body") -> None:
        """The response is committed (by another worker), or a stored one answers: serve readers from it."""
        if self.outcome != "body" or source != self.source:
            # Readers of another file (if any) switch to the body when the representation is the same.
            self.close_source()
            self.path = self.svc.store.body_path(entry)
            self.source = source
        self.headers = CIMultiDict(entry.headers)
        self.total = self.received = entry.size
        self.status = entry.status
        self.entry = entry
        self.stored = True
        self.outcome = outcome
        if outcome == "body":
            self.described(entry.fresh_until, entry.initial_age, True, entry.vary,
                           secondary_part(entry.key))
            self.received_at = entry.fetched_at
        self.notify()

    def still_same(self, rep: tuple[str | None, int | None]) -> bool:
        """Whether a reader promised representation `rep` may go on reading after a change of source."""
        return self.rep == rep and is_strong(rep[0])
