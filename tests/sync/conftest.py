"""Fixtures for district sync: a real Ralph LRS per test, a fault proxy, an outbox, statements.

`async def test_*` functions run under `asyncio.run` (the hook in tests/conftest.py).
Tests marked `lrs` FAIL (not skip) when the Ralph venv cannot be created: CI must have it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.sync.outbox import Outbox
from tests.sync.faultproxy import FaultProxy
from tests.sync.lrs import LRSUnavailable, Ralph


@pytest.fixture
def ralph(tmp_path: Path) -> Iterator[Ralph]:
    """A fresh Ralph LRS (empty store) on 127.0.0.1; its process group is killed afterwards."""
    server = Ralph(tmp_path / "ralph")
    try:
        server.start()
    except LRSUnavailable as e:
        pytest.fail(f"the Ralph LRS is needed for this test and is not available:\n{e}")
    yield server
    server.stop()


@pytest.fixture
def proxy(ralph: Ralph) -> Iterator[FaultProxy]:
    p = FaultProxy(f"http://127.0.0.1:{ralph.port}").start()
    yield p
    p.stop()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    ob = Outbox(tmp_path / "state" / "mastery" / "mastery.sqlite3")
    yield ob
    ob.close()
