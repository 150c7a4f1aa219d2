"""Facts about the host every service can read for itself: free disk and whether the clock is NTP-synchronised.

Used by /healthz and /metrics of every service, `edge doctor` and the heartbeat; no privilege needed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

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
