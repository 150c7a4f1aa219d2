"""The terminal status line: the plan's own warning length, the buzzer as it really sounds, and log lines that
never land glued onto the status line."""

from __future__ import annotations

import io
import logging
from typing import Any

from edge.clock import FakeClock
from edge.config import EdgeConfig
from edge.rotation.console import StatusPrinter
from edge.rotation.service import RotationService
from tests.rotation.plans import make_plan


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _in_warning(service: RotationService, clock: FakeClock, warning: float) -> None:
    service.engine.start(make_plan(work_minutes=2, warning=warning))
    clock.advance(120 - warning + 0.05)  # just into the warning: its beep is sounding
    service.run_once()


def test_the_warning_word_follows_the_plan_and_a_plain_buzzer_is_on_or_off(config: EdgeConfig, clock: FakeClock,
                                                                           mock_factory: Any) -> None:
    with RotationService(config, clock) as service:
        _in_warning(service, clock, 15)
        out = io.StringIO()
        StatusPrinter(service, out).tick()
        line = out.getvalue()
        assert line.startswith("15 S LEFT") and "buzzer:on" in line and "A5" not in line  # tonal = false


def test_a_tonal_buzzer_shows_its_note(make_config: Any, clock: FakeClock, mock_factory: Any) -> None:
    with RotationService(make_config(gpio={"tonal": True}), clock) as service:
        _in_warning(service, clock, 60)
        out = io.StringIO()
        StatusPrinter(service, out).tick()
        assert out.getvalue().startswith("1 MIN LEFT") and "buzzer:A5" in out.getvalue()


def test_log_lines_clear_the_status_line_first(config: EdgeConfig, clock: FakeClock, mock_factory: Any) -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    tty = Tty()
    try:
        with RotationService(config, clock) as service:
            printer = StatusPrinter(service, tty)
            printer.tick()
            logging.getLogger("edge.test").warning("something happened")
            assert tty.getvalue().endswith("\r\x1b[2K")  # the status line was wiped before the record
            printer.close()
            assert printer not in handler.filters
    finally:
        root.removeHandler(handler)
