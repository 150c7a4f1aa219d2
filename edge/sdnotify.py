"""systemd `Type=notify` support: READY/STOPPING/WATCHDOG datagrams to $NOTIFY_SOCKET (stdlib only)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any


def notify(message: str) -> bool:
    """Send e.g. "READY=1" to systemd; False (and nothing happens) when not run by systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace socket
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(addr)
        sock.sendall(message.encode())
    return True


def watchdog_interval() -> float | None:
    """How often to send WATCHDOG=1 (half the unit's WatchdogSec), None when no watchdog is armed."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 2


async def watchdog_loop() -> None:
    """Ping the systemd watchdog from the event loop (a hung loop stops the pings and gets restarted)."""
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


async def serve_until_signal(start: Callable[[], Awaitable[Any]], cleanup: Callable[[Any], Awaitable[None]]) -> None:
    """Start a service, tell systemd READY, keep the watchdog fed, stop cleanly on SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    handle = await start()
    notify("READY=1")
    dog = asyncio.create_task(watchdog_loop())
    try:
        await stop.wait()
    finally:
        notify("STOPPING=1")
        dog.cancel()
        await cleanup(handle)
