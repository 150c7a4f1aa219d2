"""Lesson manifests (JSON): which objects of which origin to prefetch, verify and pin, and which activity
ids are evidence of which skill (the mastery service reads those pairs).

    {"origin": "district", "pin": false,
     "paths": ["lessons/fractions/index.html",
               {"path": "video/intro.mp4", "sha256": "…", "size": 52428800, "pin": true},
               {"path": "quiz/fractions-1.html", "activity": "https://district.example/act/frac-1",
                "skill": "fractions", "launch": "cmi5"}]}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.exc import ManifestError

LAUNCHES = ("tincan", "cmi5", "none")  # the xAPI launch conventions the student page speaks (edge.launch)


@dataclass(frozen=True)
class ManifestItem:
    origin: str
    path: str
    sha256: str | None = None
    size: int | None = None
    pin: bool = False
    activity: str | None = None  # the xAPI activity id of the lesson (for the mastery service)
    skill: str | None = None  # the skill its answers are evidence of
    launch: str | None = None  # how the student page launches it: "tincan" (default), "cmi5" or "none"


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
        extra = set(spec) - {"path", "origin", "sha256", "size", "pin", "activity", "skill", "launch"}
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
        launch = spec.get("launch")
        if launch is not None and launch not in LAUNCHES:
            raise ManifestError(f"{where}: launch: must be one of {', '.join(LAUNCHES)}")
        items.append(ManifestItem(origin, spec["path"].lstrip("/"), sha.lower() if sha else None, size, pin,
                                  activity, skill, launch))
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
