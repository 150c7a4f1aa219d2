"""The peers benchmarks measure against: found, or the benchmark fails loudly (never a stand-in peer)."""

from __future__ import annotations

import shutil
from pathlib import Path


def require(command: str, package: str) -> str:
    """The path of `command`, or SystemExit naming the Debian package (`make bench` installs them)."""
    path = shutil.which(command) or next(
        (str(p) for p in (Path("/usr/sbin") / command, Path("/sbin") / command) if p.exists()), None)
    if path is None:
        raise SystemExit(f"bench: the peer {command!r} is missing (Debian package {package}; `make bench-deps` "
                         "installs it): no figures without the peer")
    return path
