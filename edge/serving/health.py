"""`GET /healthz` and `GET /metrics` of every service, the conventions IT's monitoring already reads.

- /healthz: no auth, a tiny JSON document; 200 `{"status": "ok", ...}` when serving, 503 with the failing
  checks' reasons when not (loop stalled, store unwritable, disk nearly full). A check is a function that
  returns None when fine, else the reason in a few words.
- /metrics: the Prometheus text format through prometheus_client, one registry per app (no process-global
  state); every service adds its own collectors to the common ones (free disk, clock synchronised). Bearer-
  protected by `[web] api_token` when one is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from edge import __version__
from edge.host import clock_synced, disk_usage
from edge.serving.auth import bearer_ok

Check = Callable[[], str | None]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LOW_DISK_FRACTION = 0.02  # under 2% free (or LOW_DISK_BYTES) the service cannot promise to store anything
LOW_DISK_BYTES = 50 * 1024 * 1024


def disk_check(path: Path) -> Check:
    """Failing when the file system holding `path` is nearly full."""
    def check() -> str | None:
        usage = disk_usage(path)
        if usage is None:
            return None
        free, total = usage
        if free < LOW_DISK_BYTES or (total and free / total < LOW_DISK_FRACTION):
            return f"disk nearly full ({free // (1024 * 1024)} MB free under {path})"
        return None

    return check


def writable_check(path: Path) -> Check:
    """Failing when `path` is missing, not writable, or on a read-only file system (no write to find out)."""
    def check() -> str | None:
        try:
            read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
        except OSError as e:
            return f"{path} is unusable: {e.strerror}"
        if read_only or not os.access(path, os.W_OK):
            return f"{path} is not writable"
        return None

    return check


class HostMetrics(Collector):
    """Free disk under the service's data directory and whether the clock is synchronised, read at scrape time."""

    def __init__(self, service: str, path: Path) -> None:
        self.service = service
        self.path = path

    def collect(self) -> Iterator[GaugeMetricFamily]:
        usage = disk_usage(self.path)
        free = GaugeMetricFamily("classroom_edge_disk_free_bytes", "Free bytes on the service's data file system",
                                 labels=["service"])
        if usage is not None:
            free.add_metric([self.service], usage[0])
        yield free
        synced = clock_synced()
        clock = GaugeMetricFamily("classroom_edge_clock_synchronised",
                                  "1 when the kernel says the clock is NTP-synchronised", labels=["service"])
        if synced is not None:
            clock.add_metric([self.service], 1.0 if synced else 0.0)
        yield clock


@dataclass
class Health:
    """One service's health checks and metrics registry."""

    service: str
    data_dir: Path
    token: str = ""  # /metrics wants `Authorization: Bearer <token>` when set
    checks: dict[str, Check] = field(default_factory=dict)
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self.checks = {"storage": writable_check(self.data_dir), "disk": disk_check(self.data_dir), **self.checks}
        self.registry.register(HostMetrics(self.service, self.data_dir))

    def report(self, extra: Mapping[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, /healthz body)."""
        problems = {}
        for name, check in self.checks.items():
            try:
                reason = check()
            except Exception as e:  # a check that breaks is a failing check, not a 500
                reason = f"the check failed: {type(e).__name__}"
            if reason is not None:
                problems[name] = reason
        body: dict[str, Any] = {"status": "failing" if problems else "ok", "service": self.service,
                                "version": __version__, **(extra or {})}
        if problems:
            body["reasons"] = problems
        return (503 if problems else 200), body

    def metrics_allowed(self, authorization: str | None) -> bool:
        return not self.token or bearer_ok(authorization, self.token)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
