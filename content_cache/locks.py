"""Per-object download locks shared by cache worker processes (flock on a file in the cache dir).

With several workers serving one cache directory, "exactly one upstream request per object" needs a lock
that works across processes and is released by the kernel when its holder dies: `flock(2)` on
`<dir>/locks/<sha256(key)>.lock`. The holder (leader) downloads into its temp file and publishes what it is
doing in `<sha256(key)>.json` beside the lock (written to a temp name and renamed: readers never see half a
file): first the temp file and upstream's headers, then the outcome. Other workers (followers) stream the
growing temp file and take the lock over when the leader goes away without an outcome (it crashed). What
the `.json` says is typed in content_cache.coordination; this module only knows files and flocks.

Lock files are empty, one per object downloaded. `remove_unheld` (run by `edge cache check` and the start-up
repair) deletes those nobody holds. Deleting a lock file could let two processes lock two different inodes
under one name, so both sides take care: the remover deletes only while it holds the flock itself (a
non-blocking attempt: a lock a live process holds is skipped), `.json` before `.lock`; and a process that
gets the flock checks that its inode is still the one at the path, else it opens the path again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.fsutil import atomic_write, remove_dead_temps


class ObjectLocks:
    """The lock directory of one cache directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def lock(self, key: str) -> ObjectLock:
        return ObjectLock(self.dir / hashlib.sha256(key.encode()).hexdigest())


class ObjectLock:
    """One object's lock and its published download state; not thread-safe (event loop only)."""

    def __init__(self, base: Path) -> None:
        self.path = base.with_suffix(".lock")
        self.meta_path = base.with_suffix(".json")
        self._fd = -1
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it (never blocks)."""
        if self.held:
            return True
        while True:
            if self._fd < 0:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            if _same_file(self._fd, self.path):
                self.held = True
                return True
            # `remove_unheld` unlinked the file we had opened (it held the flock then): a lock on that inode
            # excludes nobody. Open the path again: whoever holds that file holds the object.
            os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        """Release the lock (if held) by closing the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.held = False

    def read_meta(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.meta_path.read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_meta(self, data: dict[str, Any]) -> None:
        """Publish the leader's state (only the lock holder writes). Not fsynced: it describes a download in
        progress, which a power cut ends anyway."""
        atomic_write(self.meta_path, json.dumps(data).encode(), durable=False)

    def clear_meta(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.meta_path.unlink()


def _same_file(fd: int, path: Path) -> bool:
    """Whether `fd` is the file currently at `path` (not one unlinked or replaced since it was opened)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


@dataclass
class LockSweep:
    """What `remove_unheld` did."""

    removed: int = 0  # lock files (with their .json) nobody held
    held: int = 0  # skipped: a live process holds them
    young: int = 0  # skipped: touched less than min_age_s ago


def remove_unheld(
    directory: Path, *, min_age_s: float = 0.0, is_alive: Callable[[int], bool] | None = None
) -> LockSweep:
    """Delete the lock files (and their published state) that no live process holds.

    Safe while workers run: each file is deleted only while we hold its flock (taken without blocking, so a
    held lock is skipped, never waited for), and workers re-check the inode after locking (`try_acquire`).
    `min_age_s` spares locks whose state changed recently: a follower may be about to take the lock and
    read the outcome its leader just published (deleting it would only cost that follower a second look at
    the index, but there is no need). Left-over temp files of dead writers go too (`is_alive(pid)` decides;
    default: never remove them).
    """
    sweep = LockSweep()
    d = Path(directory)
    if not d.is_dir():
        return sweep
    now = time.time()
    for path in d.glob("*.lock"):
        meta = path.with_suffix(".json")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                sweep.held += 1
                continue
            if not _same_file(fd, path):
                continue  # removed (and maybe re-created) meanwhile: not the file we locked
            newest = os.fstat(fd).st_mtime
            with contextlib.suppress(FileNotFoundError):
                newest = max(newest, meta.stat().st_mtime)
            if now - newest < min_age_s:
                sweep.young += 1
                continue
            # While we hold the flock on the inode at `path`, nobody can lead this object: its .json is
            # ours to delete. It goes first: once `path` is gone, a new leader may create both again.
            meta.unlink(missing_ok=True)
            path.unlink()
            sweep.removed += 1
        finally:
            os.close(fd)
    if is_alive is not None:
        remove_dead_temps(d, is_alive, "*.json")
    return sweep
