"""Cue driver and button on gpiozero's MockFactory: whole pin histories for a full short plan."""

from __future__ import annotations

from typing import Any

import pytest

from edge.clock import FakeClock
from edge.config import EdgeConfig
from edge.rotation.service import RotationService
from tests.rotation.plans import make_plan

RED, AMBER, GREEN, BUZZER, BUTTON = 9, 10, 11, 17, 27


def drive(service: RotationService, clock: FakeClock, until: float) -> None:
    """Run the service loop the way its thread does, jumping the fake clock to each wake-up time."""
    end = clock.monotonic() + until
    for _ in range(100_000):
        due = service.run_once()
        if due is None or due > end:
            clock.advance(max(0.0, end - clock.monotonic()))
            service.run_once()
            return
        clock.advance(max(0.0, due - clock.monotonic()))
    raise AssertionError("loop did not settle")


def states(factory: Any, pin: int) -> list[float]:
    return [s.state for s in factory.pin(pin).states]


@pytest.fixture
def service(config: EdgeConfig, clock: FakeClock, mock_factory: Any) -> Any:
    svc = RotationService(config, clock)
    yield svc
    svc.devices.close()


def test_whole_pin_history_of_a_short_plan(service: RotationService, clock: FakeClock, mock_factory: Any) -> None:
    # 2 rounds of 30 s work (last 4 s warning), 2 s transition between them
    service.engine.start(make_plan(stations=2, groups=2, work_minutes=0.5, warning=4, transition=2))
    drive(service, clock, 70)
    assert service.engine.snapshot().status == "done"
    F, T = False, True
    assert states(mock_factory, GREEN) == [F, T, F, T, F, T, F]  # work, work, done flash
    assert states(mock_factory, AMBER) == [F, T, F, T, F, T, F, T, F, T, F]  # 1 s blinks in both warnings
    assert states(mock_factory, RED) == [F, T, F, T, F, T, F, T, F, T, F]  # 0.25 s blinks for 2 s, done
    assert states(mock_factory, BUZZER) == [F, T, F, T, F, T, F, T, F, T, F, T, F]  # 1 + 3 + 1 beeps, done


def test_cue_changes_at_the_deadline_on_the_fake_clock(service: RotationService, clock: FakeClock,
                                                        mock_factory: Any) -> None:
    service.engine.start(make_plan(stations=2, groups=2, work_minutes=0.5, warning=4, transition=2))
    t0 = clock.monotonic()
    changes: list[tuple[float, str]] = []
    service.subscribe(lambda s: changes.append((round(clock.monotonic() - t0, 6), s.phase)))
    drive(service, clock, 70)
    assert changes == [(26, "warning"), (30, "transition"), (32, "work"), (58, "warning"), (62, "done")]


def test_paused_is_amber_steady_and_silent(service: RotationService, clock: FakeClock, mock_factory: Any) -> None:
    service.engine.start(make_plan())
    drive(service, clock, 10)
    for pin in (RED, AMBER, GREEN, BUZZER):
        mock_factory.pin(pin).clear_states()
    service.engine.pause()
    drive(service, clock, 30)
    assert states(mock_factory, AMBER) == [False, True]
    assert states(mock_factory, GREEN) == [True, False]
    assert states(mock_factory, RED) == [False]
    assert states(mock_factory, BUZZER) == [False]


def press(factory: Any, clock: FakeClock, hold_s: float) -> None:
    pin = factory.pin(BUTTON)
    pin.drive_low()
    clock.advance(hold_s)
    pin.drive_high()


def test_button_short_press_pauses_and_resumes(service: RotationService, clock: FakeClock,
                                               mock_factory: Any) -> None:
    service.engine.start(make_plan())
    press(mock_factory, clock, 0.2)
    assert service.engine.snapshot().status == "paused"
    press(mock_factory, clock, 0.3)
    assert service.engine.snapshot().status == "running"


def test_button_long_press_skips_and_longer_toggles_quiet(service: RotationService, clock: FakeClock,
                                                          mock_factory: Any) -> None:
    service.engine.start(make_plan())
    press(mock_factory, clock, 2.5)
    assert service.engine.snapshot().phase == "warning"
    mock_factory.pin(BUZZER).clear_states()
    press(mock_factory, clock, 6)
    assert service.engine.snapshot().quiet is True
    press(mock_factory, clock, 2.1)  # skip to the transition: LEDs change, the buzzer stays silent
    assert service.engine.snapshot().phase == "transition"
    drive(service, clock, 5)
    assert states(mock_factory, BUZZER) == [True, False]  # only the warning beep, before quiet mode
    assert states(mock_factory, RED)[:3] == [False, True, False]


def test_button_when_idle_clears_a_fault(config: EdgeConfig, clock: FakeClock, mock_factory: Any) -> None:
    (config.state_dir).mkdir(parents=True)
    (config.state_dir / "rotation.json").write_text("{not json")
    svc = RotationService(config, clock)
    try:
        assert svc.driver.cue == "fault"
        assert states(mock_factory, RED) == [False, True]
        press(mock_factory, clock, 0.1)
        assert svc.engine.snapshot().fault is None
        assert svc.driver.cue == "idle"
        assert states(mock_factory, RED) == [False, True, False]
    finally:
        svc.devices.close()


def test_quiet_mode_from_config_silences_the_buzzer(make_config: Any, clock: FakeClock, mock_factory: Any) -> None:
    svc = RotationService(make_config(rotation={"quiet": True}), clock)
    try:
        svc.engine.start(make_plan(stations=2, groups=2, work_minutes=0.5, warning=4, transition=2))
        drive(svc, clock, 70)
        assert states(mock_factory, BUZZER) == [False]
        assert len(states(mock_factory, AMBER)) == 11  # the LEDs still do everything
    finally:
        svc.devices.close()


def test_tonal_buzzer_plays_notes_on_pwm_pins(make_config: Any, clock: FakeClock, mock_factory: Any) -> None:
    svc = RotationService(make_config(gpio={"tonal": True}), clock)
    try:
        pin = mock_factory.pin(BUZZER)
        svc.engine.start(make_plan(stations=2, groups=2, work_minutes=0.5, warning=4, transition=2))
        drive(svc, clock, 26.1)
        assert pin.frequency == pytest.approx(880.0)  # A5 for the warning beep
        assert pin.state == 0.5
        drive(svc, clock, 4.0)  # into the transition: three C6 beeps
        drive(svc, clock, 40)
        assert [s.state for s in pin.states] == [0, 0.5, 0, 0.5, 0, 0.5, 0, 0.5, 0, 0.5, 0, 0.5, 0]
    finally:
        svc.devices.close()


def _loop_started(service: RotationService) -> None:
    service.start()
    assert service.running.wait(10), "the loop thread did not start"


def test_the_cue_thread_takes_real_time_priority_where_permitted(make_config: Any, mock_factory: Any) -> None:
    import os

    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except PermissionError:
        pytest.skip("SCHED_FIFO needs root or RLIMIT_RTPRIO (CI runs as root)")
    with RotationService(make_config(rotation={"realtime_priority": 10})) as service:
        _loop_started(service)
        service.close()
        assert service.scheduling == "SCHED_FIFO 10"
    with RotationService(make_config(rotation={"realtime_priority": 0})) as service:
        _loop_started(service)
        service.close()
        assert service.scheduling == "ordinary"


def test_without_permission_the_timer_runs_with_ordinary_priority(make_config: Any, mock_factory: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    def refuse(*args: Any) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with RotationService(make_config()) as service:
        service.engine.start(make_plan(stations=2, groups=2, work_minutes=0.5))
        _loop_started(service)
        service.close()
        assert service.scheduling == "ordinary" and service.engine.snapshot().status == "running"
