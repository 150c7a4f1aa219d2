"""What a cache process shares between requests: store, upstream, in-flight downloads, health, eviction, stats.

One `Download` (content_cache.download) per object in flight; `download()` starts one or joins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from content_cache.download import Download, Expect
from content_cache.locks import ObjectLocks
from content_cache.paths import Target
from content_cache.store import Entry, Store, pid_alive
from content_cache.upstream import Upstream
from content_cache.workerstats import merge, read_worker_stats, write_worker_stats

log = logging.getLogger(__name__)


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

    async def __aenter__(self) -> CacheService:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

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
