"""Time as a dependency: the engine and cue driver read a Clock, tests advance a FakeClock."""

from __future__ import annotations

import threading
import time
from typing import Protocol

# A deadline counts as reached 1 µs early: a clock set to a float deadline ("start + offset") can land an ulp
# short of it. The engine's phase boundaries and the cue patterns' steps both use it.
EPS = 1e-6


class Clock(Protocol):
    """Monotonic seconds for deadlines; wall seconds (epoch) only for bell schedules and restarts."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class FakeClock:
    """A clock that moves only when told to; wall time moves with it."""

    def __init__(self, monotonic: float = 1000.0, wall: float = 1_790_000_000.0) -> None:
        self._mono = monotonic
        self._wall = wall
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def time(self) -> float:
        with self._lock:
            return self._wall

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += seconds
            self._wall += seconds

    def advance_wall_only(self, seconds: float) -> None:
        """A reboot: wall time passes, the monotonic clock does not carry over."""
        with self._lock:
            self._wall += seconds
