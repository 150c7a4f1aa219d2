"""Run a service until SIGTERM/SIGINT, telling systemd READY, WATCHDOG (only while healthy) and STOPPING.

Two forms of the same loop: `serve_async` for aiohttp services (the signal handlers live on the event
loop) and `serve_threaded` for the ones whose work runs in threads (waitress pages, the cache's worker
supervisor, `edge run`). The watchdog is fed only while `healthy()` says so: a hung loop stops the pings
and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import TypeVar

from edge.serving.sdnotify import notify, watchdog_interval

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _always() -> bool:
    return True


async def _feed_watchdog(healthy: Callable[[], bool]) -> None:
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        if healthy():
            notify("WATCHDOG=1")
        await asyncio.sleep(interval)


async def serve_async(start: Callable[[], Awaitable[T]], stop: Callable[[T], Awaitable[None]], *,
                      healthy: Callable[[], bool] = _always, systemd: bool = True) -> None:
    """`start()`, READY, run until SIGTERM/SIGINT, STOPPING, `stop(handle)`. `systemd=False` in forked
    workers (only the main process talks to systemd)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stopping.set)
    try:
        handle = await start()
        if systemd:
            notify("READY=1")
        dog = asyncio.create_task(_feed_watchdog(healthy)) if systemd else None
        try:
            await stopping.wait()
        finally:
            if systemd:
                notify("STOPPING=1")
            if dog is not None:
                dog.cancel()
            await stop(handle)
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def stop_on_signal() -> Iterator[threading.Event]:
    """An event set by SIGTERM/SIGINT while the block runs (the previous handlers come back afterwards)."""
    stopping = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield stopping
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def serve_threaded(stopping: threading.Event, *, tick: Callable[[], None] | None = None,
                   healthy: Callable[[], bool] = _always, interval: float = 1.0) -> None:
    """READY, then until `stopping` is set: `tick()` every `interval` seconds and the watchdog fed while
    `healthy()`; STOPPING at the end. The caller starts its threads before and stops them after."""
    dog = watchdog_interval()
    period = interval if dog is None else min(interval, dog)
    notify("READY=1")
    try:
        while not stopping.wait(period):
            if tick is not None:
                tick()
            if dog is not None and healthy():
                notify("WATCHDOG=1")
    finally:
        notify("STOPPING=1")
