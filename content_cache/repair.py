"""Repairing a cache directory (`edge cache check`, and every start): what a crash, another process, an older
or a newer version of the cache left behind. Never a crash on what it finds: a record it cannot read is
dropped, not trusted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from content_cache.entry import VarySet, entry_from_raw, vary_from_raw
from content_cache.locks import remove_unheld
from content_cache.workerstats import remove_dead_stats

if TYPE_CHECKING:
    from content_cache.store import Store

log = logging.getLogger(__name__)


@dataclass
class CheckReport:
    """What `check` found and repaired."""

    entries: int = 0
    orphan_bodies: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    dropped_entries: list[str] = field(default_factory=list)  # unreadable, body missing, wrong size or bad hash
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


def check(store: Store, *, verify: bool = False, min_orphan_age_s: float = 0.0) -> CheckReport:
    """Find and repair: dead writers' temp files, bodies nobody indexes, entries without a valid body,
    records no version can read (a damaged index, one from a newer release) and VarySets listing variants
    that are gone.

    `verify` also re-hashes every body (slow on big caches). `min_orphan_age_s` spares bodies another
    process may be just about to index, and download locks used that recently. Also removes the
    download lock files nobody holds (`content_cache.locks.remove_unheld`) and dead workers' counters.
    """
    report = CheckReport()
    report.lock_files = remove_unheld(store.dir / "locks", min_age_s=min_orphan_age_s, is_alive=pid_alive).removed
    report.stats_files = remove_dead_stats(store.dir / "stats", pid_alive)
    for tmp in store.tmp.glob("*.part"):
        pid = tmp.name.split(".", 1)[0]
        if not pid.isdigit() or not pid_alive(int(pid)) or int(pid) == os.getpid():
            tmp.unlink(missing_ok=True)
            report.temp_files.append(tmp.name)
    indexed: set[str] = set()  # bodies
    kept: set[str] = set()  # entries
    sets: dict[str, VarySet] = {}
    for key, raw in store.records():
        if (vs := vary_from_raw(raw)) is not None:
            sets[key] = vs
            continue
        entry = entry_from_raw(raw)
        reason = None
        if entry is None or entry.key != key:
            reason = "unreadable metadata"
        else:
            path = store.bodies / entry.body
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
            if entry is not None and entry.key == key:
                store.remove(key)
            else:
                store.drop_record(key)
            continue
        assert entry is not None
        indexed.add(entry.body)
        kept.add(key)
        report.entries += 1
    for url_key, vs in sets.items():
        alive = vs.keys & kept
        if not alive:
            store.drop_record(url_key)
        elif alive != vs.keys:
            store.put_record(url_key, VarySet(vs.names, alive).to_raw())
    store.sync()
    now = time.time()
    for body in store.bodies.glob("*/*"):
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
