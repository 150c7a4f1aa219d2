"""The cache's storage: a diskcache metadata index, mirrored in memory, plus bodies as our own files.

Why not diskcache for bodies: `set(read=True)` copies every file (twice the SD-card writes) synchronously,
and `expire=` hides stale entries we still want for stale-if-error. So diskcache only holds metadata;
bodies are written temp → fsync → rename under unique names, and an entry is indexed only after its body
is in place. A crash therefore leaves at worst an unindexed file (an orphan), never a half file that is
served; `check()` removes orphans and entries whose body is missing or the wrong size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diskcache

from content_cache.locks import remove_unheld
from content_cache.workerstats import remove_dead_stats
from edge.fsutil import fsync_dir
from edge.resource import Resource

log = logging.getLogger(__name__)


@dataclass
class Entry:
    """Metadata of one cached object (the body lives in `<dir>/bodies/<body>`)."""

    key: str
    url: str
    origin: str
    body: str
    size: int
    sha256: str
    fetched_at: float
    fresh_until: float
    swr_s: float = 0.0
    sie_s: float = float("inf")
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    cache_control: str | None = None
    pinned: bool = False
    last_access: float = field(default_factory=time.time)

    @property
    def validator(self) -> str:
        """The ETag sent to clients: upstream's (passed through), else one derived from the content."""
        return self.etag or f'"sha256-{self.sha256[:32]}"'


@dataclass
class CheckReport:
    """What `Store.check` found and repaired."""

    entries: int = 0
    orphan_bodies: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    dropped_entries: list[str] = field(default_factory=list)  # body missing, wrong size or bad hash
    lock_files: int = 0  # download lock files (workers > 1) that no live process held, removed
    stats_files: int = 0  # published counters of dead worker processes, removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (the owner of a lock or temp file may have died)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store(Resource):
    """Metadata index + body files under one directory. Not thread-safe: used from the event loop."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.bodies = self.dir / "bodies"
        self.tmp = self.dir / "tmp"
        for d in (self.bodies, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        # The index must never evict by itself: eviction is ours (LRU by body size, pins respected).
        self._index = diskcache.Cache(
            str(self.dir / "index"), size_limit=2**62, cull_limit=0, eviction_policy="none"
        )
        self._mem: dict[str, Entry] = {}
        self._dirty_access: set[str] = set()
        self.total_bytes = 0
        for key in list(self._index.iterkeys()):
            raw = self._index.get(key)
            if isinstance(raw, dict):
                entry = self._from_raw(raw)
                if entry is not None:
                    self._mem[entry.key] = entry
                    self.total_bytes += entry.size

    @staticmethod
    def _from_raw(raw: dict[str, Any]) -> Entry | None:
        names = {f.name for f in dataclasses.fields(Entry)}
        try:
            return Entry(**{k: v for k, v in raw.items() if k in names})
        except TypeError:
            return None  # written by an incompatible version: treat as absent

    def close(self) -> None:
        self.flush_access()
        self._index.close()


    # -- lookups ---------------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The entry for `key`: from memory, else from the index (another process may have added it)."""
        entry = self._mem.get(key)
        if entry is not None:
            return entry
        raw = self._index.get(key)
        if not isinstance(raw, dict) or (entry := self._from_raw(raw)) is None:
            return None
        if not self.body_path(entry).exists():
            return None
        self._mem[key] = entry
        self.total_bytes += entry.size
        return entry

    def reload(self, key: str) -> Entry | None:
        """Re-read `key` from the index (another process may have replaced, refreshed or removed it)."""
        self.forget(key)
        return self.get(key)

    def sync(self) -> None:
        """Make the in-memory mirror match the whole index (other processes add, replace, pin and remove).

        O(entries) reads of the index (about 17 ms for 2000 here): for eviction and admin views with several
        worker processes, never on the hit path.
        """
        seen: set[str] = set()
        total = 0
        for key in list(self._index.iterkeys()):
            raw = self._index.get(key)
            entry = self._from_raw(raw) if isinstance(raw, dict) else None
            if entry is None:
                continue
            mine = self._mem.get(entry.key)
            if mine is not None and mine.body == entry.body:
                mine.pinned = entry.pinned  # keep our object (requests hold it), take the shared flags
                mine.last_access = max(mine.last_access, entry.last_access)
            else:
                self._mem[entry.key] = entry
                self._dirty_access.discard(entry.key)
            seen.add(entry.key)
            total += entry.size
        for key in set(self._mem) - seen:
            del self._mem[key]
            self._dirty_access.discard(key)
        self.total_bytes = total

    def forget(self, key: str) -> None:
        """Drop only the in-memory mirror of `key` (another process changed it on disk)."""
        entry = self._mem.pop(key, None)
        if entry is not None:
            self.total_bytes -= entry.size
        self._dirty_access.discard(key)

    def entries(self) -> Iterator[Entry]:
        return iter(list(self._mem.values()))

    def __len__(self) -> int:
        return len(self._mem)

    def body_path(self, entry: Entry) -> Path:
        return self.bodies / entry.body

    def touch(self, entry: Entry) -> None:
        """Record an access for LRU; only memory here, flushed to the index in batches (SD-card writes)."""
        entry.last_access = time.time()
        self._dirty_access.add(entry.key)

    def flush_access(self) -> None:
        for key in list(self._dirty_access):
            entry = self._mem.get(key)
            if entry is not None:
                self._write_if_current(entry, only_access=True)
        self._dirty_access.clear()

    def _write_if_current(self, entry: Entry, *, only_access: bool = False) -> None:
        """Write `entry` to the index unless another process has indexed a different body for its key.

        Several processes share the index (cache workers, the prefetch CLI): our in-memory copy may be an
        old version, and writing it back would point the index at a body that was already replaced.
        """
        with self._index.transact():
            raw = self._index.get(entry.key)
            if isinstance(raw, dict) and raw.get("body") != entry.body:
                self.forget(entry.key)  # outdated here: the next lookup reads the index again
                return
            if only_access and isinstance(raw, dict):
                raw["last_access"] = max(float(raw.get("last_access", 0.0)), entry.last_access)
                self._index.set(entry.key, raw)
            elif raw is not None or not only_access:
                self._index.set(entry.key, dataclasses.asdict(entry))

    # -- writes ----------------------------------------------------------------------------------------

    def new_temp(self) -> Path:
        """A fresh temp path; the pid in the name tells `check` whether its writer is still alive."""
        return self.tmp / f"{os.getpid()}.{secrets.token_hex(8)}.part"

    def body_name(self, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        # A unique suffix per version: the new body never overwrites the indexed one before the index moves.
        return f"{digest[:2]}/{digest}.{secrets.token_hex(4)}"

    def commit(self, tmp: Path, entry: Entry) -> None:
        """Move a complete, fsynced temp file into place and index it (the only way bodies appear)."""
        final = self.bodies / entry.body
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        old = self._mem.get(entry.key)
        with self._index.transact():
            raw = self._index.get(entry.key)
            # A pin survives a new version, whether this process or another one saw the pin.
            entry.pinned = entry.pinned or (old is not None and old.pinned) or (
                isinstance(raw, dict) and raw.get("pinned") is True)
            self._index.set(entry.key, dataclasses.asdict(entry))
        self._mem[entry.key] = entry
        self.total_bytes += entry.size
        stale_bodies: set[str] = set()
        if old is not None:
            self.total_bytes -= old.size
            stale_bodies.add(old.body)
        if isinstance(raw, dict) and isinstance(raw.get("body"), str):
            stale_bodies.add(raw["body"])  # what another process indexed, if it differs from our copy
        stale_bodies.discard(entry.body)
        for body in stale_bodies:
            with contextlib.suppress(FileNotFoundError):
                (self.bodies / body).unlink()

    def update(self, entry: Entry) -> None:
        """Persist changed metadata (freshness after a 304, pin flag)."""
        self._dirty_access.discard(entry.key)
        self._write_if_current(entry)

    def remove(self, key: str) -> Entry | None:
        """Drop an entry and its body; returns it, or None if absent."""
        entry = self._mem.pop(key, None)
        raw = self._index.pop(key, None)
        if entry is None and isinstance(raw, dict):
            entry = self._from_raw(raw)
        elif entry is not None:
            self.total_bytes -= entry.size
        self._dirty_access.discard(key)
        if entry is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.bodies / entry.body).unlink()
        return entry

    def eviction_candidates(self, protected: Iterable[str]) -> list[Entry]:
        """Unpinned, unprotected entries, least recently used first."""
        keep = set(protected)
        return sorted(
            (e for e in self._mem.values() if not e.pinned and e.key not in keep),
            key=lambda e: e.last_access,
        )

    # -- repair ----------------------------------------------------------------------------------------

    def check(self, *, verify: bool = False, min_orphan_age_s: float = 0.0) -> CheckReport:
        """Find and repair: dead writers' temp files, bodies nobody indexes, entries without a valid body.

        `verify` also re-hashes every body (slow on big caches). `min_orphan_age_s` spares bodies another
        process may be just about to index, and download locks used that recently. Also removes the
        download lock files nobody holds (`content_cache.locks.remove_unheld`) and dead workers' counters.
        """
        report = CheckReport()
        report.lock_files = remove_unheld(self.dir / "locks", min_age_s=min_orphan_age_s,
                                          is_alive=pid_alive).removed
        report.stats_files = remove_dead_stats(self.dir / "stats", pid_alive)
        for tmp in self.tmp.glob("*.part"):
            pid = tmp.name.split(".", 1)[0]
            if not pid.isdigit() or not pid_alive(int(pid)) or int(pid) == os.getpid():
                tmp.unlink(missing_ok=True)
                report.temp_files.append(tmp.name)
        indexed: set[str] = set()
        for key in list(self._index.iterkeys()):
            raw = self._index.get(key)
            entry = self._from_raw(raw) if isinstance(raw, dict) else None
            reason = None
            if entry is None:
                reason = "unreadable metadata"
            else:
                path = self.bodies / entry.body
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    reason = "body missing"
                else:
                    if size != entry.size:
                        reason = f"body is {size} bytes, index says {entry.size}"
                    elif verify and _sha256_file(path) != entry.sha256:
                        reason = "sha256 mismatch"
            if reason is not None:
                log.warning("cache check: dropping %s: %s", key, reason)
                report.dropped_entries.append(f"{key}: {reason}")
                self.remove(str(key))
                continue
            assert entry is not None
            indexed.add(entry.body)
            report.entries += 1
        now = time.time()
        for body in self.bodies.glob("*/*"):
            rel = f"{body.parent.name}/{body.name}"
            if rel not in indexed and now - body.stat().st_mtime >= min_orphan_age_s:
                body.unlink(missing_ok=True)
                report.orphan_bodies.append(rel)
        return report


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
