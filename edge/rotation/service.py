"""The rotation service: engine + cue driver + button + bell schedule, driven by one loop thread.

The loop sleeps until the earliest of (next phase deadline, next blink/beep step, 1 s for the bell check)
and is woken early by any teacher action, so cue latency is the thread wake-up time, not a polling period.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import Histogram

from edge.clock import Clock, SystemClock
from edge.config import EdgeConfig
from edge.cues.driver import ButtonActions, CueDriver, Devices, open_devices
from edge.exc import EdgeError, RotationError
from edge.image.status import read_status
from edge.resource import Resource
from edge.rotation.engine import Engine, Snapshot
from edge.rotation.periods import saved_periods
from edge.rotation.schedule import due_period
from edge.rotation.state import JsonStateFile
from edge.rotation.store import PlanStore

log = logging.getLogger(__name__)
BELL_CHECK_S = 1.0
LOOP_STALL_S = 5.0  # the loop runs at least once a second; silent longer than this means it hangs
# deadline -> cue on the pins, in seconds (the target is p99 < 20 ms on a loaded Pi)
CUE_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


def cue_for(snap: Snapshot) -> str:
    """The cue a rotation state shows: its phase, or `fault` while a recovered fault is not cleared."""
    if snap.fault and snap.status in ("idle", "done"):
        return "fault"
    return snap.phase


class RotationService(Resource):
    """Owns the engine and the GPIO devices of one classroom unit."""

    def __init__(self, config: EdgeConfig, clock: Clock | None = None, devices: Devices | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.state_file = JsonStateFile(config.state_dir / "rotation.json")
        self.engine = Engine(self.clock, self.state_file, quiet=config.rotation.quiet)
        self.plans = PlanStore(config.plans_dir)
        self.devices = devices or open_devices(config.gpio, config.source)
        self.driver = CueDriver(self.devices, self.clock)
        self.button = ButtonActions(self.devices.button, self.clock, self.button_action,
                                    config.gpio.hold_seconds, config.gpio.quiet_hold_seconds)
        self.cue_latency = Histogram("classroom_edge_cue_latency_seconds", "From a phase deadline to its cue on "
                                     "the pins", buckets=CUE_LATENCY_BUCKETS, registry=None)
        self._waiting_for: float | None = None  # the phase deadline the loop sleeps until
        self.scheduling = "ordinary"  # of the loop thread, once it runs
        self.running = threading.Event()  # set once the loop thread runs
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_bell_check = datetime.fromtimestamp(self.clock.time())
        self._last_loop = time.monotonic()
        self.engine.subscribe(self._on_change)
        self.engine.restore()
        self._show_provisioning_fault()
        self._on_change(self.engine.snapshot())

    def _show_provisioning_fault(self) -> None:
        """A card file the first boot rejected (edge.image.status) shows as the fault cue, so the room sees that
        the unit runs on its previous settings; the button (or a started plan) acknowledges it."""
        status = read_status(self.config.config_dir)
        if status is not None and status.get("fault"):
            reason = str(status.get("reason") or "no reason recorded")[:300]
            self.engine.set_fault(f"the settings on the unit's card were rejected, the previous ones are in use: "
                                  f"{reason}")

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None:
        self.engine.subscribe(listener)

    def _on_change(self, snap: Snapshot) -> None:
        self.driver.show(cue_for(snap), snap.quiet)
        self._wake.set()

    def button_action(self, action: str) -> None:
        """What the physical button does; errors (e.g. pause when idle) are logged, never raised."""
        try:
            if action == "quiet":
                self.engine.set_quiet(not self.engine.snapshot().quiet)
            elif action == "skip":
                self.engine.skip()
            elif self.engine.snapshot().status in ("running", "paused"):
                self.engine.toggle_pause()
            else:
                self.engine.set_fault(None)
        except RotationError as e:
            log.info("button ignored: %s", e)

    def check_bell(self) -> None:
        """Start the saved plan of a class period whose bell rang since the last check."""
        now = datetime.fromtimestamp(self.clock.time())
        if (now - self._last_bell_check).total_seconds() < BELL_CHECK_S:
            return  # the loop also runs for every blink step; bells only need looking at once a second
        periods = [*self.config.rotation.periods, *saved_periods(self.config.state_dir)]  # IT's + teacher's
        period = due_period(periods, self._last_bell_check, now)
        self._last_bell_check = now
        if period is None:
            return
        if self.engine.snapshot().status in ("running", "paused"):
            log.info("bell for %s: a rotation is already running, not starting %r", period.name, period.plan)
            return
        try:
            self.engine.start(self.plans.get(period.plan))
            log.info("bell for %s: started %r", period.name or period.plan, period.plan)
        except EdgeError as e:
            log.error("bell for %s: cannot start %r: %s", period.name or period.plan, period.plan, e)
            # the class is waiting for a rotation that will not come: say so with the fault cue and on the pages
            self.engine.set_fault(f"the bell for {period.name or period.plan} could not start the plan "
                                  f"{period.plan!r}: {getattr(e, 'reason', e)}")

    def run_once(self) -> float | None:
        """Apply everything due now; returns when the loop must next run (monotonic), None if idle."""
        due = self._waiting_for
        if self.engine.tick() and due is not None:  # the boundary we waited for passed: its cue shows now
            self.cue_latency.observe(max(0.0, self.clock.monotonic() - due))
        self.driver.step()
        self.check_bell()
        self._waiting_for = self.engine.next_deadline()
        times = [t for t in (self._waiting_for, self.driver.next_change()) if t is not None]
        return min(times) if times else None

    def loop_age(self) -> float:
        """Real seconds since the loop thread last ran (the systemd watchdog is fed only while this is small)."""
        return time.monotonic() - self._last_loop

    def loop_stalled(self) -> str | None:
        """Why the loop thread is not keeping time (None while it runs, or when it was never started)."""
        if self._thread is not None and self.loop_age() > LOOP_STALL_S:
            return f"the rotation loop has not run for {self.loop_age():.0f} s"
        return None

    def _realtime(self) -> None:
        """Give this (the loop) thread real-time priority, so the cues keep time on a busy Pi; where that is not
        permitted (a laptop, a unit without LimitRTPRIO) it runs with ordinary priority and says so once."""
        prio = self.config.rotation.realtime_priority
        if not prio or not hasattr(os, "sched_setscheduler"):
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))  # 0: the calling thread on Linux
        except OSError as e:
            log.info("cue thread: real-time priority %d not permitted here (%s); ordinary scheduling", prio,
                     e.strerror)
        else:
            self.scheduling = f"SCHED_FIFO {prio}"
            log.info("cue thread: real-time priority %d (SCHED_FIFO)", prio)

    def _loop(self) -> None:
        self._realtime()
        self.running.set()
        while not self._stop.is_set():
            self._last_loop = time.monotonic()
            due = self.run_once()
            timeout = BELL_CHECK_S
            if due is not None:
                timeout = min(timeout, max(0.0, due - self.clock.monotonic()))
            self._wake.wait(timeout)
            self._wake.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="rotation", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the loop thread (if started) and release the pins."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.devices.close()

