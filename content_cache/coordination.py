"""Downloads shared by several cache worker processes: who fetches an object, and what the others see.

The holder of an object's lock (content_cache.locks) is its leader: it fetches and publishes what it is doing
beside the lock, first a `Progress` (its temp file and upstream's headers), then an `Outcome`. Any other
worker follows: it streams the leader's growing temp file to its own clients, adopts the outcome, and takes
the lock over if the leader dies before publishing one (then it resumes the dead leader's temp file with a
Range request when that is safe: a `Partial`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from multidict import CIMultiDict

from content_cache.locks import ObjectLock
from content_cache.store import Store, pid_alive
from edge.exc import UpstreamError, UpstreamKind

if TYPE_CHECKING:
    from content_cache.download import Download

log = logging.getLogger(__name__)

# body: a response, streamed from a file (stored or not); not_modified: a 304 refreshed the stored response;
# use_stale: the origin failed with a 5xx where a stored response may answer instead.
OutcomeKind = Literal["pending", "body", "not_modified", "use_stale", "error"]
FOLLOW_POLL_S = 0.005  # how often a follower looks at the leader's temp file and lock (a few syscalls)
_ERROR_KINDS: tuple[UpstreamKind, ...] = ("down", "stall", "reset", "invalid", "status", "short", "verify")


def _headers(raw: Any) -> CIMultiDict[str]:
    return CIMultiDict((str(k), str(v)) for k, v in raw) if isinstance(raw, list) else CIMultiDict()


def _int(raw: Any) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _float(raw: Any) -> float:
    return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else 0.0


@dataclass(frozen=True)
class Progress:
    """The leader is receiving a response into `tmp` (a file name in the cache's tmp dir), with what a follower
    needs to decide which of its requests that response may answer (never the leader's request fields)."""

    id: str  # the download's identity; a follower switches files when it changes
    pid: int
    tmp: str
    status: int
    headers: CIMultiDict[str]
    total: int | None
    fresh_until: float = 0.0
    initial_age: float = 0.0
    shareable: bool = False
    vary: tuple[str, ...] | None = ()
    vary_key: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"kind": "progress", "id": self.id, "pid": self.pid, "tmp": self.tmp, "status": self.status,
                "headers": list(self.headers.items()), "total": self.total, "fresh_until": self.fresh_until,
                "initial_age": self.initial_age, "shareable": self.shareable,
                "vary": None if self.vary is None else list(self.vary), "vary_key": self.vary_key}


@dataclass(frozen=True)
class Outcome:
    """How the leader's download ended."""

    id: str
    pid: int
    kind: OutcomeKind
    stored: bool
    status: int
    headers: CIMultiDict[str]
    total: int | None
    error: UpstreamError | None = None
    entry_key: str = ""  # the store key of the response it committed or refreshed

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "outcome", "id": self.id, "pid": self.pid, "outcome": self.kind,
                               "stored": self.stored, "status": self.status, "headers": list(self.headers.items()),
                               "total": self.total, "entry_key": self.entry_key}
        if self.error is not None:
            out["error"] = [self.error.kind, self.error.message]
        return out


def read_record(lock: ObjectLock) -> Progress | Outcome | None:
    """What the leader of `lock` published (None: nothing, or nothing this version can read)."""
    meta = lock.read_meta()
    if meta is None:
        return None
    try:
        ident, pid = str(meta["id"]), int(meta.get("pid", 0))
        if meta.get("kind") == "progress":
            vary = meta.get("vary")
            return Progress(ident, pid, Path(str(meta["tmp"])).name, int(meta.get("status", 200)),
                            _headers(meta.get("headers")), _int(meta.get("total")), _float(meta.get("fresh_until")),
                            _float(meta.get("initial_age")), meta.get("shareable") is True,
                            None if vary is None else tuple(str(v) for v in vary), str(meta.get("vary_key", "")))
        if meta.get("kind") == "outcome" and meta.get("outcome") in ("body", "not_modified", "use_stale", "error"):
            error = None
            raw_error = meta.get("error")
            if isinstance(raw_error, list) and len(raw_error) == 2 and raw_error[0] in _ERROR_KINDS:
                error = UpstreamError(raw_error[0], str(raw_error[1]))
            return Outcome(ident, pid, meta["outcome"], bool(meta.get("stored")), int(meta.get("status", 502)),
                           _headers(meta.get("headers")), _int(meta.get("total")), error,
                           str(meta.get("entry_key", "")))
    except (KeyError, TypeError, ValueError):
        pass
    return None


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


def claim_partial(store: Store, progress: Progress, tmp: Path) -> Partial | None:
    """Take a dead leader's temp file over (renamed to `tmp`, our temp name) if a Range request can finish it.

    Usable when the leader was receiving a 200 with a strong ETag and a known length, and the file holds a
    proper prefix of it (its bytes were written in order; a process crash does not lose page-cache writes).
    The rename makes it ours at once: `check` and the pool parent remove only dead writers' names.
    """
    old = store.tmp / progress.tmp
    etag = progress.headers.get("ETag")
    if (progress.status != 200 or progress.total is None or not etag or etag.startswith("W/")
            or "Content-Range" in progress.headers):
        old.unlink(missing_ok=True)
        return None
    try:
        os.rename(old, tmp)
        size = os.stat(tmp).st_size
    except FileNotFoundError:
        return None  # removed meanwhile (check, the pool parent): a full download
    if not 0 < size < progress.total:
        tmp.unlink(missing_ok=True)
        return None
    return Partial(size, progress.total, etag, progress.headers)


class Follower:
    """Follows another worker's download of `dl`'s object until it ends, or takes it over if the leader dies."""

    def __init__(self, dl: Download, lock: ObjectLock) -> None:
        self.dl = dl
        self.lock = lock

    async def run(self) -> None:
        dl, lock = self.dl, self.lock
        loop = asyncio.get_running_loop()
        last_change = loop.time()
        timeout = dl.svc.follow_timeout_s
        while True:
            if lock.try_acquire():
                record = read_record(lock)
                if isinstance(record, Outcome) and self._adopt(record):
                    return
                await self._take_over()
                return
            record = read_record(lock)
            if isinstance(record, Progress) and record.id != dl.source and pid_alive(record.pid):
                with contextlib.suppress(FileNotFoundError):  # renamed into place already: the outcome follows
                    dl.follow_file(os.open(dl.svc.store.tmp / record.tmp, os.O_RDONLY), record)
                    last_change = loop.time()
            if dl.source_grew():
                last_change = loop.time()
            if loop.time() - last_change > timeout:
                raise UpstreamError("stall", f"the worker downloading this object made no progress for {timeout:g} s")
            await asyncio.sleep(FOLLOW_POLL_S)

    def _adopt(self, out: Outcome) -> bool:
        """Take the leader's published outcome; False when it is unusable here (then we fetch ourselves)."""
        dl = self.dl
        if out.kind in ("body", "not_modified", "use_stale"):
            entry = dl.svc.store.reload(out.entry_key) if out.entry_key else None
            if entry is not None and (out.kind != "body" or out.stored):
                dl.finish_from_entry(entry, out.id if out.kind == "body" else f"index:{entry.body}", out.kind)
                return True
            # Not stored (no-store...): usable only if we hold the whole temp file it was streamed from.
            return out.kind == "body" and out.id == dl.source and dl.finish_followed_file(out.total)
        if out.kind == "error" and out.error is not None:
            dl.fail(out.error)
            return True
        return False

    async def _take_over(self) -> None:
        """The leader went away without an outcome: we hold the lock now, so we lead."""
        dl = self.dl
        was_body = dl.outcome == "body"
        log.warning("taking over the download of %s (the worker downloading it went away)", dl.target.key)
        await dl.lead()
        if was_body and dl.outcome != "body":
            raise UpstreamError("status", "the object changed upstream while it was being downloaded")
