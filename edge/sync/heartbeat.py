"""Heartbeat: the unit's identity and health POSTed to `district.heartbeat_url`, so IT sees units across
subnets where mDNS does not reach. It carries no student data.

Authorization: `district.heartbeat_token` (the school's district token, checked by `edge fleet serve`) as a
bearer token; without one, the LRS credentials when the heartbeat URL has the LRS's origin (scheme, host,
port). Redirects are not followed, so neither secret is ever handed to another host.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from edge import __version__
from edge.config import EdgeConfig
from edge.fleet.identity import unit_id
from edge.fleet.unitinfo import unit_health
from edge.sync.status import sync_status
from edge.sync.uploader import auth_header, ssl_context

log = logging.getLogger(__name__)
_STARTED = time.monotonic()


def _host_uptime() -> float | None:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def dir_bytes(path: Path, limit_files: int = 200_000) -> int | None:
    """Total size of regular files under `path` (None if missing); stops counting after `limit_files`."""
    if not path.is_dir():
        return None
    total = n = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                        n += 1
                        if n >= limit_files:
                            return total
        except OSError:
            continue
    return total


def kernel_kind() -> str:
    """"compiled" if the Cython BKT kernel is built (found without importing it), else "python"."""
    if os.environ.get("EDGE_NO_EXTENSIONS") == "1":
        return "python"
    try:
        return "compiled" if importlib.util.find_spec("edge_native._bkt_c") is not None else "python"
    except (ImportError, ValueError):
        return "python"


def build_heartbeat(config: EdgeConfig, *, pin_factory: str | None = None, kernel: str | None = None,
                    backlog: int | None = None, sync: dict[str, Any] | None = None) -> dict[str, Any]:
    """The heartbeat document (JSON-ready). Callers that know better pass `pin_factory`/`kernel`/`backlog`
    and the outbox status `sync` (backlog, oldest unsent, errors)."""
    if sync is None:
        sync = sync_status(config)
    if backlog is None:
        backlog = int(sync["backlog"])
    kernel = kernel or kernel_kind()
    return {
        "unit": {"id": unit_id(config), "room": config.unit.room, "school": config.unit.school,
                 "hostname": socket.gethostname()},
        "version": __version__,
        "uptime_s": round(time.monotonic() - _STARTED, 1),
        "host_uptime_s": _host_uptime(),
        "cache_bytes": dir_bytes(config.cache_dir),
        "backlog": backlog,
        "pin_factory": pin_factory or config.gpio.pin_factory or os.environ.get("GPIOZERO_PIN_FACTORY") or "auto",
        "kernel": kernel,
        "sent_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **unit_health(config, sync, kernel),
    }


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


async def send_heartbeat(config: EdgeConfig, document: dict[str, Any], *, timeout_s: float = 15.0) -> int:
    """POST `document` to district.heartbeat_url; returns the HTTP status (raises aiohttp errors)."""
    d = config.district
    if not d.heartbeat_url:
        raise ValueError("no district.heartbeat_url")
    headers = {"Content-Type": "application/json"}
    if d.heartbeat_token:
        headers["Authorization"] = f"Bearer {d.heartbeat_token}"
    elif d.lrs_url and same_origin(d.heartbeat_url, d.lrs_url) and (auth := auth_header(d)) is not None:
        headers["Authorization"] = auth
    ctx: ssl.SSLContext | bool = ssl_context(d) if d.heartbeat_url.startswith("https://") else False
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session, \
            session.post(d.heartbeat_url, json=document, headers=headers, ssl=ctx, allow_redirects=False) as resp:
        await resp.read()
        if resp.status >= 300:
            log.warning("heartbeat: district answered %d", resp.status)
        return resp.status
