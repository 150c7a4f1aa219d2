"""What a unit reports about its own health in the heartbeat: disk, clock, faults, ports.

Only facts the reporting process can see for itself (the heartbeat is sent by the mastery process), and
nothing about students.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.config import EdgeConfig
from edge.host import clock_synced, disk_usage

MAX_FAULTS = 20
MAX_FAULT_CHARS = 200
LOW_DISK_FRACTION = 0.05  # under 5% free on the state directory's file system is a fault


def faults(sync: Mapping[str, Any], *, kernel: str, disk: tuple[int, int] | None,
           synced: bool | None) -> list[str]:
    """Short, human-readable problems IT should look at (empty when all is well)."""
    out: list[str] = []
    if sync.get("enabled") and sync.get("last_error"):
        out.append(f"sync: {sync['last_error']}")
    if sync.get("quarantined"):
        out.append(f"sync: {sync['quarantined']} statement(s) quarantined (edge sync status)")
    if synced is False:
        out.append("clock: not synchronised (NTP)")
    if disk is not None and disk[1] > 0 and disk[0] / disk[1] < LOW_DISK_FRACTION:
        out.append(f"disk: only {disk[0] * 100 // disk[1]}% free on the state file system")
    if kernel != "compiled":
        out.append("mastery: compiled BKT kernel missing (pure-Python twin in use)")
    return [f[:MAX_FAULT_CHARS] for f in out[:MAX_FAULTS]]


def unit_health(config: EdgeConfig, sync: Mapping[str, Any], kernel: str) -> dict[str, Any]:
    """The heartbeat fields the fleet page shows besides identity and version."""
    disk = disk_usage(config.state_dir)
    synced = clock_synced()
    return {
        "ports": {"web": config.web.port, "cache": config.cache.port, "mastery": config.mastery.port},
        "disk_free_bytes": None if disk is None else disk[0],
        "disk_total_bytes": None if disk is None else disk[1],
        "clock_synced": synced,
        "oldest_unsent_age_s": sync.get("oldest_unsent_age_s"),
        "faults": faults(sync, kernel=kernel, disk=disk, synced=synced),
    }
