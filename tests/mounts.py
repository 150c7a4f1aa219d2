"""Real file-system conditions for tests: a read-only or tiny (nearly full) tmpfs mounted for the test and
unmounted after it. Needs root (CI runs as root); elsewhere the test is skipped, saying why."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, *, size: str = "4m", read_only: bool = False, fill_to_kb: int = 0) -> Iterator[Path]:
    """Mount a tmpfs at `path` (created); `fill_to_kb` writes a file of that size first (a full disk)."""
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        if fill_to_kb:
            with open(path / "filler", "wb") as f, contextlib.suppress(OSError):
                f.write(b"\0" * fill_to_kb * 1024)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
