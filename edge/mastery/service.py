"""The mastery service's state for one app: store, writer thread, reader thread, BKT state, district sync,
snapshots.

`Mastery.open(config, activity_skills)` loads every stored piece of evidence into the in-memory state and
starts the writer, the uploader and the snapshot loop; `close()` takes a last snapshot and stops them.
Reads (statement queries, documents) run on their own thread and connection, beside the writer (WAL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from edge.config import EdgeConfig
from edge.db import connect
from edge.mastery.model import MasteryState, band
from edge.mastery.statement_db import Reads
from edge.mastery.store import Store
from edge.mastery.writer import GroupWriter
from edge.params import with_district_file
from edge.sync.outbox import Outbox
from edge.sync.service import SyncService
from edge.sync.status import outbox_path
from edge.xapi import iso, now_us

log = logging.getLogger(__name__)
SNAPSHOT_STOP_TIMEOUT_S = 30.0
T = TypeVar("T")


class ReadSide:
    """A read-only connection to the store's file, used from one reader thread."""

    def __init__(self, path: Path) -> None:
        self.db: sqlite3.Connection = connect(path)
        self.db.execute("PRAGMA query_only=1")
        self.statements = Reads(self.db)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mastery-read")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, self.db)

    def close(self) -> None:
        self.executor.submit(self.db.close).result()
        self.executor.shutdown(wait=True)


@dataclass
class Mastery:
    """Everything one app instance owns."""

    config: EdgeConfig
    store: Store
    state: MasteryState
    writer: GroupWriter
    activity_skills: Mapping[str, str]
    sync: SyncService
    reads: ReadSide
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    pending: Counter[int] = field(default_factory=Counter)  # stored times of requests not yet committed

    @classmethod
    async def open(cls, config: EdgeConfig, activity_skills: Mapping[str, str]) -> Mastery:
        directory = config.state_dir / "mastery"
        params = with_district_file(config.mastery.params, directory / "params.toml")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mastery-store")
        loop = asyncio.get_running_loop()
        store = await loop.run_in_executor(executor, Store, directory / "mastery.sqlite3",
                                           config.mastery.account_home_page)
        state = MasteryState(params)
        rows = await loop.run_in_executor(executor, store.all_evidence)
        await loop.run_in_executor(executor, state.load, rows)
        # the district sync runs in this process, on the outbox inside the same SQLite file
        sync = SyncService(config, outbox=Outbox(outbox_path(config)))
        reads = ReadSide(directory / "mastery.sqlite3")
        m = cls(config, store, state, GroupWriter(store, state, executor), activity_skills, sync, reads)
        m.writer.start()
        m.background = [asyncio.create_task(sync.run(m.stop)), asyncio.create_task(m._snapshot_loop())]
        return m

    async def close(self) -> None:
        self.stop.set()  # the snapshot loop takes a last snapshot and ends; the uploader stops mid-round (safe)
        sync_task, snapshot_task = self.background
        sync_task.cancel()
        await asyncio.gather(sync_task, asyncio.wait_for(snapshot_task, SNAPSHOT_STOP_TIMEOUT_S),
                             return_exceptions=True)
        self.sync.outbox.close()
        await self.writer.stop()
        await self.writer.run_db(self.store.close)
        self.writer.executor.shutdown(wait=True)
        self.reads.close()

    @contextlib.contextmanager
    def in_flight(self, stored_us: int) -> Iterator[None]:
        """While a request stored at `stored_us` is being committed, nothing is consistent from then on."""
        self.pending[stored_us] += 1
        try:
            yield
        finally:
            self.pending[stored_us] -= 1
            if not self.pending[stored_us]:
                del self.pending[stored_us]

    def consistent_through(self) -> str:
        """X-Experience-API-Consistent-Through: every statement stored up to this time is visible to reads.

        Taken before a read: statements still being committed have a stored time after it.
        """
        return iso((min(self.pending) if self.pending else now_us()) - 1)

    async def snapshot_once(self) -> int:
        """Queue mastery snapshots of the cells that changed; wakes the uploader if there were any."""
        bands = self.config.mastery.bands
        n = await self.writer.run_db(lambda: self.store.queue_snapshots(
            self.state.cells(), datetime.now(UTC), self.config.unit, lambda p: band(p, bands)))
        if n:
            log.info("queued %d mastery snapshots for the district", n)
            self.sync.wake()
        return n

    async def _snapshot_loop(self) -> None:
        """Every `snapshot_minutes`, and once more when the service stops."""
        every = self.config.mastery.snapshot_minutes * 60
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=every)
            await self.snapshot_once()


MASTERY = web.AppKey("mastery", Mastery)
