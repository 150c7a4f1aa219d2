"""The group-commit writer: one thread owns the SQLite store; requests queue up and share one fsync.

Whatever arrived while the previous commit was fsyncing goes into the next transaction, so 36 classroom
Chromebooks cost one fsync per group, not one per request. A request's coroutine returns once its items are
durable and applied to the mastery state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from edge.mastery.docstore import DocWrite
from edge.mastery.model import MasteryState
from edge.mastery.store import Store, WriteRequest

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_GROUP = 256  # requests per transaction


class GroupWriter:
    """Owns the store's thread; `run_db` runs any store call there, `write` queues for the next group commit."""

    def __init__(self, store: Store, state: MasteryState, executor: ThreadPoolExecutor) -> None:
        self.store = store
        self.state = state
        self.executor = executor
        self.queue: asyncio.Queue[tuple[WriteRequest | DocWrite, asyncio.Future[None]]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def run_db(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name="mastery-writer")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def write(self, req: WriteRequest | DocWrite) -> None:
        """Queue a request (or a document write) for the next group commit; returns once it is durable (and
        applied). A refused document write returns with its `error` set and nothing written."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put((req, fut))
        await fut

    def _commit_and_apply(self, reqs: list[WriteRequest], docs: list[DocWrite]) -> None:
        voided = self.store.write_group(reqs, docs)
        new = [ev for r in reqs for ev in r.new_evidence]
        if new:
            replayed = self.state.apply(new, self.store.history)
            if replayed:
                log.info("late evidence: replayed %d (student, skill) cells", replayed)
        if voided:
            self.state.replay(voided, self.store.history)
            log.info("voided evidence: replayed %d (student, skill) cells", len(voided))

    async def _loop(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty() and len(batch) < MAX_GROUP:
                batch.append(self.queue.get_nowait())
            reqs = [r for r, _ in batch if isinstance(r, WriteRequest)]
            docs = [r for r, _ in batch if isinstance(r, DocWrite)]
            outcome: BaseException | None = None
            try:
                await self.run_db(functools.partial(self._commit_and_apply, reqs, docs))
            except Exception as e:
                log.exception("evidence store failed")
                outcome = e
            for _, fut in batch:
                if not fut.done():
                    if outcome is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(outcome)
