"""What a cache process shares between requests: store, upstream, in-flight downloads, origin health and
policies, eviction, stats.

One `Download` (content_cache.download) per response in flight; `download()` joins one that may answer the
request, or starts one.
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
from content_cache.entry import Entry, url_of
from content_cache.fields import Fields, lines
from content_cache.forward import Want
from content_cache.locks import ObjectLocks
from content_cache.origins import Policy
from content_cache.paths import Target, local_key
from content_cache.store import Store, pid_alive, variant_key
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
    passed: int = 0  # requests relayed to the origin uncached (POST, PUT, DELETE, OPTIONS...)
    invalidated: int = 0  # stored responses dropped because an unsafe request changed their URL


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
    policies: dict[str, Policy]
    max_bytes: int
    backoff_s: float
    admin_token: str = ""  # never forwarded upstream (content_cache.forward)
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
        cls, directory: Path, origins: dict[str, str], policies: dict[str, Policy], *, max_bytes: int,
        backoff_s: float, stall_timeout_s: float, admin_token: str = "", shared: bool = False, worker: int = 0,
    ) -> CacheService:
        store = Store(directory)
        return cls(store, Upstream(stall_timeout_s), dict(origins), dict(policies), max_bytes, backoff_s,
                   admin_token, locks=ObjectLocks(store.dir / "locks") if shared else None, worker=worker,
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

    def policy(self, origin: str) -> Policy:
        return self.policies.get(origin) or Policy()

    # -- health ----------------------------------------------------------------------------------------

    def record_failure(self, origin: str, reason: str, *, back_off: bool) -> None:
        """An upstream failure; `back_off` (the origin could not be reached) puts the origin in back-off."""
        h = self.health.setdefault(origin, OriginHealth())
        now = time.time()
        if back_off:
            h.down_until = now + self.backoff_s
        h.last_error = reason
        h.last_error_at = now
        h.failures += 1

    def mark_healthy(self, origin: str) -> None:
        h = self.health.get(origin)
        if h is not None:
            h.down_until = 0.0

    def is_down(self, origin: str) -> bool:
        h = self.health.get(origin)
        return h is not None and not h.healthy(time.time())

    def stale_ok(self, entry: Entry, origin: str, *, unreachable: bool, now: float | None = None) -> bool:
        """Whether a stored response that is no longer fresh may answer because the origin failed: allowed by
        `stale-if-error` (RFC 5861), by the origin's settings (unreachable: `offline_stale`, as RFC 9111 §4.2.4
        allows a disconnected cache; a 5xx: `stale_on_5xx`), never against must-revalidate & co. unless
        `offline_ignores_revalidate` says so for an unreachable origin."""
        policy = self.policy(origin)
        if entry.no_stale and not (unreachable and policy.offline_ignores_revalidate):
            return False
        now = time.time() if now is None else now
        if now - entry.fresh_until <= entry.sie_s:
            return True
        return policy.offline_stale if unreachable else policy.stale_on_5xx

    # -- downloads -------------------------------------------------------------------------------------

    def download(self, target: Target, want: Want, stale: Entry | None = None, expect: Expect | None = None, *,
                 exclude: Download | None = None) -> tuple[Download, bool]:
        """A download whose response may answer `want`: one in flight (second item True) or a new one.

        A new one is registered (others may join it) under the request's variant key when the URL's Vary is
        known, else the URL key; when that slot is taken by a download `want` may not share, it runs alone.
        """
        # The URL's Vary: as stored, else as the response in flight for the URL key has just said.
        flight = self.inflight.get(target.key)
        names = self.store.vary_names(target.key) or (flight.vary if flight is not None else None)
        keys = [variant_key(target.key, names, want.headers)] if names else []
        keys.append(target.key)
        now = time.time()
        for key in keys:
            dl = self.inflight.get(key)
            if dl is not None and dl is not exclude and dl.joinable(want, now):
                return dl, True
        slot: str | None = keys[0] if keys[0] not in self.inflight else None
        dl = Download(self, target, want, stale, expect, slot)
        if slot is not None:
            self.inflight[slot] = dl
        return dl, False

    def revalidate_in_background(self, target: Target, want: Want, entry: Entry) -> None:
        """stale-while-revalidate: refresh without making anyone wait (coalesced like any download)."""
        self.download(target, want, entry)

    def release_serving(self, key: str) -> None:
        """One response for `key` finished (keys at zero are dropped: the counter must not grow forever)."""
        self.serving[key] -= 1
        if self.serving[key] <= 0:
            del self.serving[key]

    def invalidate(self, target: Target, response_headers: Fields) -> None:
        """RFC 9111 §4.4: after a non-error answer to an unsafe request, drop what is stored for its URL and
        for the Location and Content-Location URLs on the same origin."""
        keys = {target.key}
        for name in ("Location", "Content-Location"):
            for value in lines(response_headers, name):
                if (key := local_key(value, target, self.origins)) is not None:
                    keys.add(key)
        for key in keys:
            self.stats.invalidated += len(self.store.remove_url(key))

    # -- eviction --------------------------------------------------------------------------------------

    def evict_to_fit(self) -> None:
        """Evict least-recently-used entries until under max_bytes; pinned/in-flight/being-served stay."""
        if self.locks is not None:
            # Other workers commit, pin and evict too: count and choose from the whole shared index. (A body
            # another worker is sending stays readable through its open fd after the unlink.)
            self.store.sync()
        if self.store.total_bytes <= self.max_bytes:
            return
        protected = {url_of(k) for k in self.inflight} | set(self.serving)
        candidates = sorted((e for e in self.store.entries() if not e.pinned and e.primary not in protected),
                            key=lambda e: e.last_access)  # least recently used first
        for entry in candidates:
            if self.store.total_bytes <= self.max_bytes:
                break
            self.store.remove(entry.key)
            self.stats.evictions += 1
            log.info("evicted %s (%d bytes)", entry.key, entry.size)

    def evict(self, key: str) -> bool:
        """Admin eviction of a URL's stored responses (refused while one of them downloads)."""
        if self.downloading(key):
            return False
        return bool(self.store.remove_url(key))

    def downloading(self, key: str) -> bool:
        return any(url_of(k) == key for k in self.inflight)

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
