"""Prefetch: download a lesson manifest ahead of class, verifying sha256/size, optionally pinning.

Manifest (JSON)::

    {"origin": "district", "pin": false,
     "paths": ["lessons/fractions/index.html",
               {"path": "video/intro.mp4", "sha256": "…", "size": 52428800, "pin": true},
               {"path": "quiz/fractions-1.html", "activity": "https://district.example/act/frac-1",
                "skill": "fractions"}]}

`activity`/`skill` pairs are the lesson manifest's activity → skill mapping the mastery service reads.

A sha256 or size mismatch is never committed (so never served) and is reported as `rejected`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from content_cache.paths import TargetError, resolve_target
from content_cache.service import CacheService, Download, Expect
from edge.exc import EdgeError

Status = Literal["fetched", "cached", "rejected", "failed"]


class ManifestError(EdgeError, ValueError):
    """A prefetch manifest that cannot be used; the message says which item and why."""


@dataclass(frozen=True)
class ManifestItem:
    origin: str
    path: str
    sha256: str | None = None
    size: int | None = None
    pin: bool = False
    activity: str | None = None  # the xAPI activity id of the lesson (for the mastery service)
    skill: str | None = None  # the skill its answers are evidence of


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


def parse_manifest(data: Any, origins: Mapping[str, str], source: str = "manifest") -> list[ManifestItem]:
    """Validate a decoded manifest against the configured origins."""
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: must be a JSON object with 'origin' and 'paths'")
    unknown = set(data) - {"origin", "paths", "pin"}
    if unknown:
        raise ManifestError(f"{source}: unknown key(s) {', '.join(sorted(unknown))} (known: origin, paths, pin)")
    default_origin = data.get("origin")
    default_pin = data.get("pin", False)
    if not isinstance(default_pin, bool):
        raise ManifestError(f"{source}: pin: must be true or false")
    paths = data.get("paths")
    if not isinstance(paths, list) or not paths:
        raise ManifestError(f"{source}: paths: must be a non-empty list")
    items: list[ManifestItem] = []
    for i, raw in enumerate(paths):
        where = f"{source}: paths[{i}]"
        spec: dict[str, Any] = {"path": raw} if isinstance(raw, str) else raw
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str) or not spec["path"]:
            raise ManifestError(f"{where}: must be a path string or an object with 'path'")
        extra = set(spec) - {"path", "origin", "sha256", "size", "pin", "activity", "skill"}
        if extra:
            raise ManifestError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        origin = spec.get("origin", default_origin)
        if not isinstance(origin, str) or origin not in origins:
            raise ManifestError(f"{where}: origin {origin!r} is not configured (known: {', '.join(sorted(origins))})")
        sha = spec.get("sha256")
        if sha is not None and (not isinstance(sha, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha)):
            raise ManifestError(f"{where}: sha256: must be 64 hex digits")
        size = spec.get("size")
        if size is not None and (type(size) is not int or size < 0):
            raise ManifestError(f"{where}: size: must be a non-negative integer")
        pin = spec.get("pin", default_pin)
        if not isinstance(pin, bool):
            raise ManifestError(f"{where}: pin: must be true or false")
        activity, skill = spec.get("activity"), spec.get("skill")
        for name, value in (("activity", activity), ("skill", skill)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ManifestError(f"{where}: {name}: must be a non-empty string")
        if (activity is None) != (skill is None):
            raise ManifestError(f"{where}: activity and skill go together (the activity's answers are evidence "
                                "of the skill)")
        items.append(ManifestItem(origin, spec["path"].lstrip("/"), sha.lower() if sha else None, size, pin,
                                  activity, skill))
    return items


def load_manifest(path: Path, origins: Mapping[str, str]) -> list[ManifestItem]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: invalid JSON: {e}") from None
    return parse_manifest(data, origins, str(path))


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
    entry = svc.store.get(key)
    matches = entry is not None and (item.sha256 in (None, entry.sha256)) and (item.size in (None, entry.size))
    if entry is not None and matches and time.time() < entry.fresh_until:
        result = ItemResult(key, "cached", entry.size)
    else:
        if item.pin:
            svc.pin_requests[key] = True
        dl, _ = svc.download(target, entry if matches else None, Expect(item.sha256, item.size))
        state.active[key] = dl
        try:
            await dl.finished.wait()
        finally:
            state.active.pop(key, None)
        result = _judge(svc, item, key, dl)
    if item.pin and result.status in ("fetched", "cached") and (entry := svc.store.get(key)) is not None:
        entry.pinned = True
        svc.store.update(entry)
    return result


def _judge(svc: CacheService, item: ManifestItem, key: str, dl: Download) -> ItemResult:
    if dl.error is not None:
        return ItemResult(key, "rejected" if dl.error.kind == "verify" else "failed", message=dl.error.message)
    if dl.outcome == "passthrough":
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
