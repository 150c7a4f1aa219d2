"""The rotation in a terminal: a live status line (phase, round, time left, each LED, the buzzer) while the
timer runs in the foreground — `edge rotation run`, and the heart of `edge run`."""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

from edge.exc import RotationError
from edge.rotation.plan import Plan
from edge.rotation.service import RotationService
from edge.rotation.status_line import status_line
from edge.serving.lifecycle import serve_threaded


class StatusPrinter(logging.Filter):
    """Rewrites one line in place on a terminal; in a log, prints a line per phase change.

    On a terminal it also clears its line before any log record is written (it is a filter on the root
    handlers), so a log line never lands glued to the end of the status line; the next tick redraws it.
    """

    def __init__(self, rotation: RotationService, out: TextIO | None = None) -> None:
        super().__init__()
        self.rotation = rotation
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self._last: tuple[object, ...] = ()
        if self.tty:
            for handler in logging.getLogger().handlers:
                handler.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        self.out.write("\r\x1b[2K")
        self.out.flush()
        return True

    def tick(self) -> None:
        snap = self.rotation.engine.snapshot()
        plan = self.rotation.engine.plan
        line = status_line(snap, self.rotation.driver.outputs(), plan.warning_seconds if plan else None)
        key = (snap.phase, snap.round, snap.quiet, snap.fault)
        if self.tty:
            self.out.write("\r\x1b[2K" + line)
            self.out.flush()
        elif key != self._last:
            print(line, file=self.out, flush=True)
        self._last = key

    def close(self) -> None:
        if self.tty:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(self)
            self.out.write("\n")
            self.out.flush()


def run_console(rotation: RotationService, plan: Plan | None, stopping: threading.Event,
                interval_s: float = 0.5, *, until_done: bool = False) -> None:
    """Start `plan` (if any), run the rotation loop and print its status until `stopping` is set, or, with
    `until_done`, until the plan is over and its done cue has played."""
    started = False
    if plan is not None:
        try:
            rotation.engine.start(plan)
            started = True
        except RotationError as e:
            print(f"edge: not starting {plan.name!r}: {e}", file=sys.stderr)
    rotation.start()
    printer = StatusPrinter(rotation)

    def tick() -> None:
        printer.tick()
        if until_done and started and rotation.engine.snapshot().status == "done" \
                and rotation.driver.next_change() is None:
            stopping.set()

    try:
        printer.tick()
        serve_threaded(stopping, tick=tick, interval=interval_s, healthy=lambda: rotation.loop_stalled() is None)
    finally:
        printer.close()
