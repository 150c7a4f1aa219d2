"""The image installs exactly the wheels pinned in requirements-arm64.lock: every dependency the app declares
must be there with a hash, or the built image cannot start the services (`make image-lock` regenerates it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_dependency_has_a_pinned_arm64_wheel() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {normalised(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in deps}
    pinned = {}
    for line in (ROOT / "image_build/requirements-arm64.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+) --hash=sha256:([0-9a-f]{64})", line)
            assert m, f"not a pinned wheel with its hash: {line!r}"
            pinned[normalised(m[1])] = m[2]
    assert declared <= pinned.keys(), f"missing from the lock (make image-lock): {sorted(declared - pinned.keys())}"
