"""Prefetch: download a lesson manifest (content_cache.manifest) ahead of class, verifying sha256/size and
optionally pinning. A sha256 or size mismatch is never committed (so never served) and is reported as
`rejected`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from content_cache.download import Download, Expect
from content_cache.forward import Want
from content_cache.manifest import ManifestItem
from content_cache.paths import resolve_target
from content_cache.service import CacheService
from edge.exc import TargetError

Status = Literal["fetched", "cached", "rejected", "failed"]


@dataclass
class ItemResult:
    key: str
    status: Status
    bytes: int = 0
    message: str = ""


@dataclass
class PrefetchReport:
    results: list[ItemResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return all(r.status in ("fetched", "cached") for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "fetched": self.count("fetched"),
            "cached": self.count("cached"),
            "rejected": self.count("rejected"),
            "failed": self.count("failed"),
            "bytes_fetched": sum(r.bytes for r in self.results if r.status == "fetched"),
            "seconds": round(self.seconds, 3),
            "items": [asdict(r) for r in self.results],
        }


@dataclass
class PrefetchState:
    """Live progress, for the CLI's bar."""

    total: int
    done: int = 0
    bytes_done: int = 0
    active: dict[str, Download] = field(default_factory=dict)

    @property
    def bytes_now(self) -> int:
        return self.bytes_done + sum(d.received for d in self.active.values())


def _raw_target(item: ManifestItem) -> str:
    path, sep, query = item.path.partition("?")
    encoded = "/".join(quote(seg, safe="") for seg in path.split("/"))
    return f"/{quote(item.origin, safe='')}/{encoded}{sep}{query}"


async def _one(svc: CacheService, item: ManifestItem, state: PrefetchState) -> ItemResult:
    try:
        target = resolve_target(_raw_target(item), svc.origins)
    except TargetError as e:
        return ItemResult(f"{item.origin}/{item.path}", "rejected", message=e.message)
    key = target.key
    want = Want()  # the cache's own request: no client fields (a Vary resource gets its default variant)
    entry = svc.store.lookup(key, want.headers)
    expect = Expect(item.sha256, item.size)
    matches = entry is not None and expect.met_by(entry)
    if entry is not None and matches and time.time() < entry.fresh_until:
        result = ItemResult(key, "cached", entry.size)
    else:
        if item.pin:
            svc.pin_requests[key] = True
        dl, _ = svc.download(target, want, entry if matches else None, expect)
        state.active[key] = dl
        try:
            await dl.finished.wait()
        finally:
            state.active.pop(key, None)
        result = _judge(svc, item, key, dl)
    if item.pin and result.status in ("fetched", "cached") and (entry := svc.store.lookup(key, want.headers)):
        entry.pinned = True
        svc.store.update(entry)
    return result


def _judge(svc: CacheService, item: ManifestItem, key: str, dl: Download) -> ItemResult:
    if dl.error is not None:
        return ItemResult(key, "rejected" if dl.error.kind == "verify" else "failed", message=dl.error.message)
    if dl.outcome == "use_stale":
        return ItemResult(key, "failed", message=f"upstream answered {dl.status}; the stored copy stays")
    if dl.outcome == "body" and dl.status != 200:
        return ItemResult(key, "failed", message=f"upstream answered {dl.status}")
    entry = dl.entry
    if entry is None or (not dl.stored and dl.outcome == "body"):
        return ItemResult(key, "failed", message="upstream forbids storing it (Cache-Control no-store/private)")
    # Joined a download someone else started without our expectations: check after the fact.
    if (item.sha256 and entry.sha256 != item.sha256) or (item.size is not None and entry.size != item.size):
        svc.store.remove(key)
        svc.stats.verify_failures += 1
        return ItemResult(key, "rejected", message=f"sha256/size differ from the manifest (got {entry.sha256})")
    if dl.outcome == "not_modified":
        return ItemResult(key, "cached", entry.size, "revalidated")
    return ItemResult(key, "fetched", entry.size)


async def run_prefetch(
    svc: CacheService, items: list[ManifestItem], *, concurrency: int = 4,
    on_update: Callable[[PrefetchState], None] | None = None,
) -> PrefetchReport:
    """Fetch every item (a few at a time: the classroom link is shared) and report each outcome."""
    t0 = time.monotonic()
    state = PrefetchState(total=len(items))
    sem = asyncio.Semaphore(concurrency)
    report = PrefetchReport()

    async def worker(item: ManifestItem) -> ItemResult:
        async with sem:
            r = await _one(svc, item, state)
        state.done += 1
        state.bytes_done += r.bytes if r.status == "fetched" else 0
        if on_update is not None:
            on_update(state)
        return r

    report.results = list(await asyncio.gather(*(worker(i) for i in items)))
    report.seconds = time.monotonic() - t0
    return report
