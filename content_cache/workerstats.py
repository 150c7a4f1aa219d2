"""Counters of several cache worker processes, so `/_cache/stats` covers the whole cache, not one worker.

With `workers = N` a request reaches one worker, whose counters (hits, misses, upstream health...) are only
its own. So each worker publishes its figures to `<dir>/stats/worker-<index>.json` (written to a temp name
and renamed: readers never see half a file) about once a second when they changed, and at shutdown; the
stats endpoint sums the files of live workers (their pid exists) with its own live counters. The figures of
another worker are therefore up to `PUBLISH_INTERVAL_S` old; each worker's `as_of_s_ago` says how old.

A worker that dies leaves its file behind with a dead pid: it no longer counts, its replacement (same
index) overwrites it, and `edge cache check` / the start-up repair removes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edge.fsutil import atomic_write, remove_dead_temps

PUBLISH_INTERVAL_S = 1.0


def stats_path(directory: Path, worker: int) -> Path:
    return Path(directory) / f"worker-{worker}.json"


def write_worker_stats(directory: Path, worker: int, report: dict[str, Any]) -> None:
    """Publish one worker's report atomically (only that worker writes its file)."""
    # Not durable: the figures are advisory and re-published every second; a power cut losing them is fine.
    atomic_write(stats_path(directory, worker), json.dumps(report).encode(), durable=False)


def _pid_of(report: dict[str, Any]) -> int:
    pid = report.get("pid")
    return pid if isinstance(pid, int) else 0


def read_worker_stats(directory: Path, is_alive: Callable[[int], bool]) -> list[dict[str, Any]]:
    """The reports of workers whose process is alive (unreadable files are skipped)."""
    out: list[dict[str, Any]] = []
    d = Path(directory)
    if not d.is_dir():
        return out
    for path in sorted(d.glob("worker-*.json")):
        try:
            data = json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("worker"), int) and is_alive(_pid_of(data)):
            out.append(data)
    return out


def remove_dead_stats(directory: Path, is_alive: Callable[[int], bool]) -> int:
    """Delete the reports (and temp files) of workers that are gone; returns how many reports went."""
    d = Path(directory)
    if not d.is_dir():
        return 0
    removed = 0
    for path in d.glob("worker-*.json"):
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            continue
        except ValueError:
            data = {}
        if not isinstance(data, dict) or not is_alive(_pid_of(data)):
            path.unlink(missing_ok=True)
            removed += 1
    remove_dead_temps(d, is_alive, "worker-*.json")
    return removed


def _num(value: Any) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def merge(reports: Iterable[dict[str, Any]], origins: Iterable[str], now: float) -> dict[str, Any]:
    """Sum the workers' counters; upstream health per origin across workers; per-worker figures too.

    An origin is healthy when no worker has it in back-off; `retry_in_s` is the longest back-off,
    `last_error` the most recent error any worker saw, `failures` the sum, `down_in_workers` who backs off.
    """
    reports = sorted(reports, key=lambda r: int(r["worker"]))
    totals: dict[str, float] = {}
    for r in reports:
        counters = r.get("counters")
        if isinstance(counters, dict):
            for name, value in counters.items():
                totals[name] = totals.get(name, 0) + _num(value)
    upstreams: dict[str, dict[str, Any]] = {}
    per_worker: list[dict[str, Any]] = []
    for name in origins:
        retry = 0.0
        last_error, last_at, failures = "", 0.0, 0
        down_in: list[int] = []
        for r in reports:
            h = (r.get("upstreams") or {}).get(name)
            if not isinstance(h, dict):
                continue
            left = _num(h.get("down_until")) - now
            if left > 0:
                down_in.append(int(r["worker"]))
                retry = max(retry, left)
            failures += int(_num(h.get("failures")))
            if h.get("last_error") and _num(h.get("last_error_at")) >= last_at:
                last_error, last_at = str(h["last_error"]), _num(h.get("last_error_at"))
        upstreams[name] = {"healthy": not down_in, "retry_in_s": round(retry, 1), "last_error": last_error,
                           "failures": failures, "down_in_workers": down_in}
    for r in reports:
        ups = r.get("upstreams") or {}
        per_worker.append({
            "worker": r["worker"],
            "pid": _pid_of(r),
            "as_of_s_ago": round(max(0.0, now - _num(r.get("written_at", now))), 1),
            **{k: v for k, v in (r.get("counters") or {}).items()},
            "upstreams": {
                name: {
                    "healthy": _num(h.get("down_until")) <= now,
                    "retry_in_s": round(max(0.0, _num(h.get("down_until")) - now), 1),
                    "last_error": str(h.get("last_error", "")),
                    "failures": int(_num(h.get("failures"))),
                }
                for name, h in ups.items() if isinstance(h, dict)
            },
        })
    return {"totals": {k: int(v) for k, v in totals.items()}, "upstreams": upstreams, "workers": per_worker}

