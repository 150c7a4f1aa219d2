"""The aiohttp services (lesson cache, mastery) on one asyncio loop in a background thread, for `edge run`.

In production each is its own systemd unit (`edge cache serve`, `edge mastery serve`); here they share a
process so a laptop demo is one command.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from edge.config import EdgeConfig

log = logging.getLogger(__name__)
Starter = Callable[[EdgeConfig], Coroutine[Any, Any, web.AppRunner]]


class AioServices:
    """Start the given aiohttp services on a private loop; `stop()` cleans them up and ends the thread."""

    def __init__(self, config: EdgeConfig, starters: dict[str, Starter]) -> None:
        self.config = config
        self.starters = starters
        self.loop = asyncio.new_event_loop()
        self.runners: dict[str, web.AppRunner] = {}
        self.errors: dict[str, str] = {}
        self._thread = threading.Thread(target=self.loop.run_forever, name="aio-services", daemon=True)

    def start(self) -> None:
        self._thread.start()
        for name, starter in self.starters.items():
            try:
                self.runners[name] = asyncio.run_coroutine_threadsafe(starter(self.config), self.loop).result(30)
            except OSError as e:  # e.g. the port is taken: the other services still run
                self.errors[name] = str(e)
                log.error("%s did not start: %s", name, e)

    def stop(self) -> None:
        async def cleanup() -> None:
            for runner in self.runners.values():
                await runner.cleanup()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        self.loop.close()
