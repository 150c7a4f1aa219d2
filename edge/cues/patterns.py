"""What each rotation phase looks and sounds like; never colour alone (steady vs slow vs fast blink + beeps).

A track is a list of (seconds, value) steps; a repeating track loops, a one-shot track holds its last value.
LED values are on/off; buzzer values are a note name (a TonalBuzzer plays it, a plain Buzzer just sounds)
or None for silence. The README's wiring section documents these patterns; keep them in step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.clock import EPS

INF = math.inf
CHANNELS = ("red", "amber", "green", "buzzer")
Value = bool | str | None


@dataclass(frozen=True)
class Track:
    steps: tuple[tuple[float, Value], ...]
    repeat: bool = False

    def value_at(self, t: float) -> tuple[Value, float]:
        """The value `t` seconds into the track and how long until it next changes (inf = never)."""
        t += EPS  # a clock set to "start + boundary" can land an ulp short of the boundary in floats
        period = sum(d for d, _ in self.steps)
        if self.repeat and math.isfinite(period):
            t = math.fmod(t, period)
        for duration, value in self.steps:
            if t < duration:
                return value, duration - t + EPS
            t -= duration
        return self.steps[-1][1], INF


def steady(value: Value) -> Track:
    return Track(((INF, value),))


def blink(on_s: float, off_s: float) -> Track:
    return Track(((on_s, True), (off_s, False)), repeat=True)


def beeps(note: str, count: int, on_s: float, off_s: float) -> Track:
    steps: list[tuple[float, Value]] = []
    for _ in range(count):
        steps += [(on_s, note), (off_s, None)]
    steps[-1] = (INF, None)
    return Track(tuple(steps))


OFF = steady(False)
SILENT = steady(None)

CUES: dict[str, dict[str, Track]] = {
    "idle": {"red": OFF, "amber": OFF, "green": OFF, "buzzer": SILENT},
    # green steady: keep working
    "work": {"red": OFF, "amber": OFF, "green": steady(True), "buzzer": SILENT},
    # amber slow blink + one short beep: one minute left
    "warning": {"red": OFF, "amber": blink(1.0, 1.0), "green": OFF, "buzzer": beeps("A5", 1, 0.2, 0.0)},
    # red fast blink + three quick high beeps: move now
    "transition": {"red": blink(0.25, 0.25), "amber": OFF, "green": OFF, "buzzer": beeps("C6", 3, 0.1, 0.1)},
    # amber steady, silent: the teacher paused
    "paused": {"red": OFF, "amber": steady(True), "green": OFF, "buzzer": SILENT},
    # all three on for 2 s with a long low beep, then all off: the rotation is over
    "done": {
        "red": Track(((2.0, True), (INF, False))), "amber": Track(((2.0, True), (INF, False))),
        "green": Track(((2.0, True), (INF, False))), "buzzer": Track(((1.0, "E5"), (INF, None))),
    },
    # red steady + amber fast blink + two long beeps: state was lost and the timer reset (press to clear)
    "fault": {"red": steady(True), "amber": blink(0.25, 0.25), "green": OFF, "buzzer": beeps("A4", 2, 0.6, 0.4)},
}
