"""What a unit reports about its own health in the heartbeat: disk, clock, faults, ports.

Only facts the reporting process can see for itself (the heartbeat is sent by the mastery process), and
nothing about students.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.config import EdgeConfig

MAX_FAULTS = 20
MAX_FAULT_CHARS = 200
LOW_DISK_FRACTION = 0.05  # under 5% free on the state directory's file system is a fault
MAX_ERROR_SYNCED_US = 16_000_000  # systemd's rule: the kernel's maxerror under 16 s means NTP-synchronised


class _Timex(ctypes.Structure):
    """`struct timex` (linux/timex.h) up to `tai`, plus the kernel's reserved tail."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("reserved", ctypes.c_int * 11),
    ]


def clock_synced() -> bool | None:
    """Whether the kernel considers the system clock NTP-synchronised (what `timedatectl` shows as
    "System clock synchronized"); None where adjtimex cannot be asked. modes=0 only reads: no privilege."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        if libc.adjtimex(ctypes.byref(tx)) < 0:
            return None
    except (OSError, AttributeError):
        return None
    return bool(tx.maxerror < MAX_ERROR_SYNCED_US)


def disk_usage(path: Path) -> tuple[int, int] | None:
    """(free bytes for unprivileged users, total bytes) of the file system holding `path` (or its parent)."""
    for candidate in (path, *path.parents):
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return None


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
