"""Group commit: requests queue up while the previous transaction is fsyncing, and the next transaction takes all
of them, so a classroom of clients (or a district of units) costs one fsync per group, not one per request.

One thread (the executor's) owns the store; `submit(item)` returns once `commit([...item...])` has returned
for the group that held it, or raises what it raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T]):
    def __init__(self, commit: Callable[[list[T]], None], executor: ThreadPoolExecutor, *,
                 max_group: int = 256, name: str = "group-commit") -> None:
        self.commit = commit
        self.executor = executor
        self.max_group = max_group
        self.name = name
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[None]]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name=self.name)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def run(self, fn: Callable[[], R]) -> R:
        """Run any other call on the store's thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def submit(self, item: T) -> None:
        """Queue `item` for the next group; returns once it is committed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        await fut

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < self.max_group:
                batch.append(self._queue.get_nowait())
            outcome: BaseException | None = None
            try:
                await loop.run_in_executor(self.executor, self.commit, [item for item, _ in batch])
            except Exception as e:
                log.exception("%s: the commit failed", self.name)
                outcome = e
            for _, fut in batch:
                if not fut.done():
                    if outcome is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(outcome)
