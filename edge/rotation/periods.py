"""Teacher-edited bell schedule: class periods saved as JSON in the state directory.

These come in addition to `[[rotation.periods]]` in edge.toml (which IT owns and the pages show read-only).
The service loop reads the file once a second, so `saved_periods` only re-parses it when it changed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.config import PeriodConfig, read_section
from edge.exc import ConfigError, StateError
from edge.fsutil import atomic_write
from edge.limits import PERIODS_MAX
from edge.rotation.state import JsonStateFile
from edge.rotation.store import slug

log = logging.getLogger(__name__)
FILE_NAME = "periods.json"
VERSION = 1


def parse_periods(items: Any, file: str, prefix: str = "periods") -> list[PeriodConfig]:
    """Validate a list of period tables; errors are ConfigError(file, "periods[i].key", reason)."""
    if not isinstance(items, list):
        raise ConfigError(file, prefix, "must be a list of periods")
    if len(items) > PERIODS_MAX:
        raise ConfigError(file, prefix, f"at most {PERIODS_MAX} periods (got {len(items)})")
    periods: list[PeriodConfig] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        key = f"{prefix}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(file, key, "must be a table with name, plan, days and start")
        period = read_section(PeriodConfig, item, file, key)
        if not period.plan:
            raise ConfigError(file, f"{key}.plan", "missing (the saved plan to start)")
        if not period.name.strip():
            raise ConfigError(file, f"{key}.name", "must be a non-empty string")
        if period.name in names:
            raise ConfigError(file, f"{key}.name", f"duplicate name {period.name!r}")
        names.add(period.name)
        periods.append(period)
    return periods


def period_json(period: PeriodConfig) -> dict[str, Any]:
    return asdict(period)


class PeriodStore:
    """`<state_dir>/periods.json`: {"version": 1, "periods": [{name, plan, days, start}, ...]}."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME

    def periods(self) -> list[PeriodConfig]:
        """The saved periods ([] if none); raises StateError if the file is unreadable or invalid."""
        doc = JsonStateFile(self.path).load()
        if doc is None:
            return []
        if doc.get("version") != VERSION:
            raise StateError(f"{self.path} is not a version {VERSION} period schedule")
        try:
            return parse_periods(doc.get("periods"), str(self.path))
        except ConfigError as e:
            raise StateError(str(e)) from e

    def save(self, periods: list[PeriodConfig]) -> None:
        doc = {"version": VERSION, "periods": [period_json(p) for p in periods]}
        atomic_write(self.path, json.dumps(doc, indent=1).encode())


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int, int], list[PeriodConfig]]] = {}


def saved_periods(state_dir: Path) -> list[PeriodConfig]:
    """The teacher's periods for the bell check: cached until the file changes; a bad file counts as none."""
    store = PeriodStore(state_dir)
    try:
        st = store.path.stat()
    except OSError:
        return []
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # a replace makes a new inode
    with _cache_lock:
        hit = _cache.get(store.path)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            periods = store.periods()
        except StateError as e:
            log.warning("ignoring the saved period schedule: %s", e)
            periods = []
        _cache[store.path] = (stamp, periods)
        return periods


def periods_starting(plan: str, periods: Iterable[PeriodConfig]) -> list[str]:
    """The names of the periods whose bell starts `plan` (matched the way plans are saved: by file name)."""
    return [p.name or p.plan for p in periods if slug(p.plan) == slug(plan)]
