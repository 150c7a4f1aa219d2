"""Per-object download locks shared by cache worker processes (flock on a file in the cache dir).

With several workers serving one cache directory, "exactly one upstream request per object" needs a lock
that works across processes and is released by the kernel when its holder dies: `flock(2)` on
`<dir>/locks/<sha256(key)>.lock`. The holder (leader) downloads into its temp file and publishes what it is
doing in `<sha256(key)>.json` beside the lock (written to a temp name and renamed: readers never see half a
file): first the temp file and upstream's headers, then the outcome. Other workers (followers) stream the
growing temp file and take the lock over when the leader goes away without an outcome (it crashed).

Lock files are never deleted while the cache runs (deleting one would let two processes lock two different
inodes under the same name); they are empty, one per object ever downloaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any


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
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        return True

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
        """Publish the leader's state (only the lock holder writes)."""
        tmp = self.meta_path.with_name(f"{self.meta_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.meta_path)

    def clear_meta(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.meta_path.unlink()
