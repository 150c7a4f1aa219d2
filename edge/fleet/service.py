"""The collector's state for one app: the store (one writer thread, group commits), a reader, the school tokens."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jinja2
from aiohttp import web

from edge.config import EdgeConfig
from edge.fleet.heartbeats import unit_view
from edge.fleet.metrics import Exposition
from edge.fleet.store import FleetStore, Heartbeat, load_units
from edge.serving.groupcommit import GroupCommit

Clock = Callable[[], float]


@dataclass
class Collector:
    config: EdgeConfig
    store: FleetStore
    reader: sqlite3.Connection
    writer: GroupCommit[Heartbeat]  # the one writer thread: heartbeats share one fsync per group
    read_executor: ThreadPoolExecutor
    now: Clock
    token_schools: dict[bytes, str]  # sha256(token) -> school
    templates: jinja2.Environment
    received: int = 0
    refused: int = 0
    metrics: Exposition | None = None

    @property
    def offline_s(self) -> float:
        return self.config.fleet.offline_minutes * 60

    def school_of(self, token: str) -> str | None:
        """The school whose token this is; the token's hash is compared in constant time to every school's."""
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for known, school in self.token_schools.items():
            if hmac.compare_digest(known, digest):
                found = school
        return found

    async def views(self) -> list[dict[str, Any]]:
        rows = await asyncio.get_running_loop().run_in_executor(self.read_executor, load_units, self.reader)
        now = self.now()
        return [unit_view(r, now, self.offline_s) for r in rows]


COLLECTOR = web.AppKey("collector", Collector)
