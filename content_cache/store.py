"""The cache's storage: a diskcache metadata index, mirrored in memory, plus bodies as our own files.

Why not diskcache for bodies: `set(read=True)` copies every file (twice the SD-card writes) synchronously,
and `expire=` hides stale entries we still want for stale-if-error. So diskcache only holds metadata;
bodies are written temp → fsync → rename under unique names, and an entry is indexed only after its body
is in place. A crash therefore leaves at worst an unindexed file (an orphan), never a half file that is
served; `check()` (content_cache.repair) removes orphans and entries whose body is missing or the wrong size.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache

from content_cache.entry import VARIANT_SEP, Entry, VarySet, entry_from_raw, url_of, vary_from_raw
from content_cache.fields import Fields
from content_cache.http import secondary_key
from content_cache.repair import CheckReport, check, pid_alive
from edge.fsutil import fsync_dir
from edge.resource import Resource

__all__ = ["CheckReport", "Entry", "Store", "pid_alive", "variant_key"]
log = logging.getLogger(__name__)


class Store(Resource):
    """Metadata index + body files under one directory. Not thread-safe: used from the event loop.

    A URL whose responses carry Vary has a `VarySet` record at its URL key and one entry per variant at
    `<url key>\n<secondary key>` (RFC 9111 §4.1); a URL without Vary has its entry at the URL key itself.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.bodies = self.dir / "bodies"
        self.tmp = self.dir / "tmp"
        for d in (self.bodies, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        # The index must never evict by itself: eviction is ours (LRU by body size, pins respected).
        self._index = diskcache.Cache(str(self.dir / "index"), size_limit=2**62, cull_limit=0, eviction_policy="none")
        self._mem: dict[str, Entry] = {}
        self._vary: dict[str, VarySet] = {}
        self._dirty_access: set[str] = set()
        self.total_bytes = 0
        self.sync()

    def close(self) -> None:
        self.flush_access()
        self._index.close()


    # -- lookups ---------------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The entry at store key `key`: from memory, else from the index (another process may have added it)."""
        entry = self._mem.get(key)
        if entry is not None:
            return entry
        raw = self._index.get(key)
        if (vs := vary_from_raw(raw)) is not None:
            self._vary[key] = vs
            return None
        if (entry := entry_from_raw(raw)) is None or not self.body_path(entry).exists():
            return None
        self._mem[key] = entry
        self.total_bytes += entry.size
        return entry

    def in_memory(self, url_key: str) -> Entry | None:
        """The URL's entry if this process holds it and the URL does not vary (the hit path: a dict lookup)."""
        return self._mem.get(url_key)

    def lookup(self, url_key: str, request_headers: Fields) -> Entry | None:
        """The stored response for a request: the URL's entry, or the variant its Vary fields select."""
        entry = self._mem.get(url_key)
        if entry is None and url_key not in self._vary:
            entry = self.get(url_key)  # another process may have stored it (or a VarySet there)
        if entry is not None or (vs := self._vary.get(url_key)) is None:
            return entry
        return self.get(variant_key(url_key, vs.names, request_headers))

    def vary_names(self, url_key: str) -> tuple[str, ...] | None:
        """The fields the URL's stored responses vary on, if they do (as far as this process knows)."""
        vs = self._vary.get(url_key)
        return vs.names if vs is not None else None

    def reload(self, key: str) -> Entry | None:
        """Re-read `key` from the index (another process may have replaced, refreshed or removed it)."""
        self.forget(key)
        return self.get(key)

    def reload_url(self, url_key: str, request_headers: Fields) -> Entry | None:
        """`lookup` after re-reading the URL's record (another process may have stored other variants)."""
        self.forget(url_key)
        self._vary.pop(url_key, None)
        entry = self.lookup(url_key, request_headers)
        return self.reload(entry.key) if entry is not None and entry.key != url_key else entry

    def sync(self) -> None:
        """Make the in-memory mirror match the whole index (other processes add, replace, pin and remove).

        O(entries) reads of the index (about 17 ms for 2000 here): at start, for eviction and admin views with
        several worker processes, never on the hit path.
        """
        seen: set[str] = set()
        total = 0
        vary: dict[str, VarySet] = {}
        for key in list(self._index.iterkeys()):
            raw = self._index.get(key)
            if (vs := vary_from_raw(raw)) is not None:
                vary[str(key)] = vs
                continue
            entry = entry_from_raw(raw)
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
        self._vary = vary
        self.total_bytes = total

    def forget(self, key: str) -> None:
        """Drop only the in-memory mirror of `key` (another process changed it on disk)."""
        entry = self._mem.pop(key, None)
        if entry is not None:
            self.total_bytes -= entry.size
        self._dirty_access.discard(key)

    def entries(self) -> Iterator[Entry]:
        return iter(list(self._mem.values()))

    def variants(self, url_key: str) -> list[Entry]:
        """Every stored response of a URL: its entry, or all of its variants."""
        entry = self.get(url_key)  # also learns a VarySet the index holds there
        if entry is not None:
            return [entry]
        vs = self._vary.get(url_key)
        return [e for k in sorted(vs.keys) if (e := self.get(k)) is not None] if vs is not None else []

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
                self._index.set(entry.key, entry.to_raw())

    # -- writes ----------------------------------------------------------------------------------------

    def new_temp(self) -> Path:
        """A fresh temp path; the pid in the name tells `check` whether its writer is still alive."""
        return self.tmp / f"{os.getpid()}.{secrets.token_hex(8)}.part"

    def body_name(self, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        # A unique suffix per version: the new body never overwrites the indexed one before the index moves.
        return f"{digest[:2]}/{digest}.{secrets.token_hex(4)}"

    def commit(self, tmp: Path, entry: Entry) -> None:
        """Move a complete, fsynced temp file into place and index it (the only way bodies appear).

        The URL's other stored responses go when they cannot coexist with this one: a response without Vary
        replaces every variant, a variant replaces a response without Vary and variants selected by other
        fields (the latest Vary of a resource is the one that counts).
        """
        final = self.bodies / entry.body
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        url_key = entry.primary
        doomed: set[str] = set()
        replaced: list[dict[str, Any]] = []
        with self._index.transact():
            raw = self._index.get(entry.key)
            head = raw if entry.key == url_key else self._index.get(url_key)
            vs = vary_from_raw(head)
            kept: VarySet | None = None
            if entry.vary:
                if vs is None or vs.names != entry.vary:
                    doomed = set(vs.keys) if vs is not None else {url_key} if isinstance(head, dict) else set()
                    vs = VarySet(entry.vary)
                vs.keys.add(entry.key)
                doomed.discard(entry.key)
                kept = vs
            elif vs is not None:
                doomed = set(vs.keys)
            for key in doomed:
                if isinstance(old_raw := self._index.pop(key, None), dict):
                    replaced.append(old_raw)
            if kept is not None:  # after the doomed records: a plain entry at the URL key is one of them
                self._index.set(url_key, kept.to_raw())
            # A pin survives a new version, whether this process or another one saw the pin.
            old = self._mem.get(entry.key)
            entry.pinned = entry.pinned or (old is not None and old.pinned) or any(
                r.get("pinned") is True for r in [*replaced, raw] if isinstance(r, dict))
            self._index.set(entry.key, entry.to_raw())
        for key in doomed:
            self.forget(key)
        if kept is not None:
            self._vary[url_key] = kept
        else:
            self._vary.pop(url_key, None)
        self._mem[entry.key] = entry
        self.total_bytes += entry.size
        stale_bodies = {r["body"] for r in [*replaced, raw] if isinstance(r, dict) and isinstance(r.get("body"), str)}
        if old is not None:
            self.total_bytes -= old.size
            stale_bodies.add(old.body)
        stale_bodies.discard(entry.body)
        for body in stale_bodies:
            with contextlib.suppress(FileNotFoundError):
                (self.bodies / body).unlink()

    def update(self, entry: Entry) -> None:
        """Persist changed metadata (freshness and fields after a 304, pin flag)."""
        self._dirty_access.discard(entry.key)
        self._write_if_current(entry)

    def remove(self, key: str) -> Entry | None:
        """Drop one stored response and its body (a variant also leaves its URL's VarySet); returns it."""
        entry = self._mem.pop(key, None)
        url = url_of(key)
        with self._index.transact():
            raw = self._index.get(key)
            if vary_from_raw(raw) is None:  # a VarySet another process wrote at the URL key stays
                self._index.pop(key, None)
            if url != key and (vs := vary_from_raw(self._index.get(url))) is not None:
                vs.keys.discard(key)
                if vs.keys:
                    self._index.set(url, vs.to_raw())
                else:
                    self._index.pop(url, None)
        if url != key and url in self._vary:
            self._vary[url].keys.discard(key)
            if not self._vary[url].keys:
                del self._vary[url]
        if entry is None:
            entry = entry_from_raw(raw)
        else:
            self.total_bytes -= entry.size
        self._dirty_access.discard(key)
        if entry is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.bodies / entry.body).unlink()
        return entry

    def remove_url(self, url_key: str) -> list[Entry]:
        """Drop every stored response of a URL (invalidation, admin eviction); returns them."""
        self._vary.pop(url_key, None)
        raw = self._index.get(url_key)
        keys = sorted(vs.keys) if (vs := vary_from_raw(raw)) is not None else []
        keys += [k for k in self._mem if url_of(k) == url_key and k not in keys and k != url_key]
        removed = [e for k in keys if (e := self.remove(k)) is not None]
        if (entry := self.remove(url_key)) is not None:
            removed.append(entry)
        self._index.pop(url_key, None)
        return removed

    # -- repair ----------------------------------------------------------------------------------------

    def records(self) -> Iterator[tuple[str, Any]]:
        """Every (key, record) of the index as it is on disk, readable or not (for content_cache.repair)."""
        for key in list(self._index.iterkeys()):
            yield str(key), self._index.get(key)

    def drop_record(self, key: str) -> None:
        """Delete an index record that is no readable entry (for content_cache.repair)."""
        self._index.pop(key, None)
        self.forget(key)

    def put_record(self, key: str, raw: dict[str, Any]) -> None:
        self._index.set(key, raw)

    def check(self, *, verify: bool = False, min_orphan_age_s: float = 0.0) -> CheckReport:
        """Find and repair what a crash, an old or newer version or another process left (content_cache.repair)."""
        return check(self, verify=verify, min_orphan_age_s=min_orphan_age_s)


def variant_key(url_key: str, names: tuple[str, ...], request_headers: Fields) -> str:
    """The store key of the variant of `url_key` that a request selects (RFC 9111 §4.1)."""
    return f"{url_key}{VARIANT_SEP}{secondary_key(names, request_headers)}"
