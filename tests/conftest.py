"""Shared fixtures: a fake clock, a config on tmp_path, gpiozero mock pins reset after every test."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  (see below)
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.clock import FakeClock
from edge.config import EdgeConfig, parse_config

# Import hypothesis here, at a shallow stack: its pytest plugin otherwise imports it for the first time in the
# terminal summary, deep inside pytest's hooks, where CPython 3.11.7's AST depth check fails with
# "SystemError: AST constructor recursion depth mismatch" (gh-106905) when a run has no hypothesis test.


ASYNC_TEST_TIMEOUT_S = 60.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests in a fresh event loop (pytest-asyncio is not used), bounded so a hang fails."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), ASYNC_TEST_TIMEOUT_S))
    return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mock_factory() -> Iterator[Any]:
    """PWM-capable mock pins as gpiozero's default factory; reset so the next test can claim the pins."""
    saved = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    yield factory
    factory.reset()
    Device.pin_factory = saved


@pytest.fixture
def make_config(tmp_path: Path) -> Any:
    def make(**sections: dict[str, Any]) -> EdgeConfig:
        doc: dict[str, Any] = {"unit": {"state_dir": str(tmp_path / "state")}}
        for name, values in sections.items():
            doc.setdefault(name, {}).update(values)
        return parse_config(doc, str(tmp_path / "edge.toml"))

    return make


@pytest.fixture
def config(make_config: Any) -> EdgeConfig:
    cfg: EdgeConfig = make_config()
    return cfg
