"""Crash-safe file writes: temp file, fsync, rename, fsync the directory (a power cut leaves old or new)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable (the directory entry is data too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True, mode: int | None = None) -> None:
    """Replace `path` with `data` so that readers see either the old or the new file, never half of one.

    `durable=False` skips the fsyncs, for advisory files rewritten every second (worker figures, download
    state): readers still never see half a file, but a power cut may lose the last version. `mode` sets the
    file's permissions before it appears under its name (secrets are never readable, even for a moment).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the temp name lets a cleaner tell a dead writer's leftover (remove_dead_temps)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def remove_dead_temps(directory: Path, is_alive: Callable[[int], bool], pattern: str = "*") -> int:
    """Delete the temp files `atomic_write` left in `directory` (matching `.<pattern>.<pid>.*.tmp`) whose
    writer process is gone (a crash between write and rename); returns how many went."""
    removed = 0
    if not directory.is_dir():
        return 0
    for tmp in directory.glob(f".{pattern}.*.*.tmp"):
        pid = tmp.name.rsplit(".", 3)[-3]
        if pid.isdigit() and not is_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
