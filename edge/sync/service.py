"""The sync service: upload rounds and heartbeats as asyncio tasks inside the mastery process.

    sync = SyncService(config)              # opens the outbox (the mastery store's file)
    task = asyncio.create_task(sync.run(stop))
    sync.wake()                             # after storing statements / on `POST /api/v1/sync` ("sync now")
    sync.status()                           # the dict for GET /api/v1/sync

With no `district.lrs_url`, `run` only sends heartbeats (if configured) and status says sync is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

from edge.config import EdgeConfig
from edge.sync.heartbeat import build_heartbeat, send_heartbeat
from edge.sync.outbox import Outbox
from edge.sync.status import outbox_path, sync_status
from edge.sync.uploader import Backoff, RoundResult, Uploader

log = logging.getLogger(__name__)


class SyncService:
    def __init__(self, config: EdgeConfig, *, outbox: Outbox | None = None, interval_s: float | None = None,
                 heartbeat_every_s: float = 300.0, concurrency: int = 2,
                 max_requests_per_s: float | None = None) -> None:
        self.config = config
        self.outbox = outbox or Outbox(outbox_path(config))
        self.interval_s = interval_s if interval_s is not None else config.district.sync_interval_s
        if max_requests_per_s is None and config.district.max_requests_per_s > 0:
            max_requests_per_s = config.district.max_requests_per_s
        self.heartbeat_every_s = heartbeat_every_s
        self.uploader = (Uploader(self.outbox, config.district, concurrency=concurrency,
                                  max_requests_per_s=max_requests_per_s) if config.district.lrs_url else None)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def status(self) -> dict[str, Any]:
        return sync_status(self.config, self.outbox)

    async def round(self) -> RoundResult | None:
        return None if self.uploader is None else await self.uploader.run_round()

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._heartbeats(stop))]
        if self.uploader is not None:
            tasks.append(asyncio.create_task(
                self.uploader.run_forever(stop, self._wake, interval_s=self.interval_s, backoff=Backoff())))
        else:
            log.info("sync is off: no district.lrs_url (evidence is kept in the outbox)")
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            if self.uploader is not None:
                await self.uploader.close()

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        if not self.config.district.heartbeat_url:
            return
        while not stop.is_set():
            try:
                status = sync_status(self.config, self.outbox)
                await send_heartbeat(self.config, build_heartbeat(self.config, sync=status))
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                log.warning("heartbeat failed: %s", type(e).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.heartbeat_every_s)
