"""Bell schedules: a saved plan starts at its period's bell (wall clock, local time), once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from edge.clock import FakeClock
from edge.config import PeriodConfig
from edge.rotation.schedule import due_period, period_starts
from edge.rotation.service import RotationService
from tests.rotation.plans import make_plan

MONDAY_0939 = datetime(2026, 11, 23, 9, 39, 30)  # 2026-11-23 is a Monday


def test_period_starts_on_its_weekdays_only() -> None:
    p = PeriodConfig(name="P2", plan="x", days=["mon", "wed"], start="09:40")
    starts = period_starts(p, datetime(2026, 11, 22, 0, 0), datetime(2026, 11, 29, 0, 0))
    assert starts == [datetime(2026, 11, 23, 9, 40), datetime(2026, 11, 25, 9, 40)]
    # the interval is (since, until]: a bell exactly at `since` was already handled
    assert period_starts(p, datetime(2026, 11, 23, 9, 40), datetime(2026, 11, 23, 10, 0)) == []


def test_long_outage_does_not_replay_old_bells() -> None:
    p = PeriodConfig(name="P2", plan="x", days=["mon"], start="09:40")
    assert len(period_starts(p, datetime(2026, 1, 1), datetime(2026, 11, 24))) == 1


def test_latest_bell_wins() -> None:
    a = PeriodConfig(name="A", plan="a", days=["mon"], start="09:00")
    b = PeriodConfig(name="B", plan="b", days=["mon"], start="09:30")
    got = due_period([a, b], datetime(2026, 11, 23, 8, 0), datetime(2026, 11, 23, 9, 45))
    assert got is not None and got.name == "B"


def test_service_starts_the_saved_plan_at_the_bell(make_config: Any, mock_factory: Any, tmp_path: Path) -> None:
    clock = FakeClock(wall=MONDAY_0939.timestamp())
    config = make_config(rotation={"periods": [{"name": "Period 2", "plan": "Test plan", "days": ["mon"],
                                                "start": "09:40"}]})
    svc = RotationService(config, clock)
    try:
        svc.plans.save(make_plan())
        svc.run_once()
        assert svc.engine.snapshot().status == "idle"
        clock.advance(31)
        svc.run_once()
        snap = svc.engine.snapshot()
        assert (snap.status, snap.plan, snap.phase) == ("running", "Test plan", "work")
        svc.engine.end()
        clock.advance(5)
        svc.run_once()  # the same bell does not start it again
        assert svc.engine.snapshot().status == "done"
    finally:
        svc.devices.close()


def test_bell_with_a_missing_plan_is_logged_not_raised(make_config: Any, mock_factory: Any,
                                                       caplog: Any) -> None:
    clock = FakeClock(wall=MONDAY_0939.timestamp())
    config = make_config(rotation={"periods": [{"plan": "Nope", "days": ["mon"], "start": "09:40"}]})
    svc = RotationService(config, clock)
    try:
        clock.advance(60)
        svc.run_once()
        assert svc.engine.snapshot().status == "idle"
        assert "cannot start 'Nope'" in caplog.text
    finally:
        svc.devices.close()
