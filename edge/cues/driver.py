"""The thin cue driver: shows a named cue (edge.cues.patterns) on gpiozero TrafficLights, a buzzer, and reads
the teacher button. It knows nothing of rotations: the rotation service says which cue to show.

Patterns are stepped on the engine's clock (not with gpiozero's blink threads) so that cues start exactly
at the phase boundary, pin histories are reproducible on a fake clock, and latency can be measured.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpiozero import Button, Buzzer, TonalBuzzer, TrafficLights
from gpiozero.tones import Tone

from edge.clock import Clock
from edge.config import GpioConfig
from edge.cues.patterns import CHANNELS, CUES, SILENT, Track, Value
from edge.cues.pins import factory_name, resolve_pin_factory
from edge.resource import Resource

log = logging.getLogger(__name__)


@dataclass
class Devices(Resource):
    """The gpiozero devices of one unit, all on one pin factory (a context manager: `with open_devices(...)`)."""

    lights: TrafficLights
    buzzer: Buzzer | TonalBuzzer
    button: Button
    factory: Any
    fallback: bool

    @property
    def factory_name(self) -> str:
        return factory_name(self.factory)

    def close(self) -> None:
        for dev in (self.button, self.buzzer, self.lights):
            dev.close()



def open_devices(gpio: GpioConfig, source: str = "<config>") -> Devices:
    """Claim the configured pins; on a host without GPIO this runs on mock pins (warned once)."""
    factory, fallback = resolve_pin_factory(gpio.pin_factory, source)
    lights = TrafficLights(gpio.red, gpio.amber, gpio.green, pin_factory=factory)
    buzzer: Buzzer | TonalBuzzer = (
        TonalBuzzer(gpio.buzzer, octaves=3, pin_factory=factory) if gpio.tonal
        else Buzzer(gpio.buzzer, pin_factory=factory)
    )
    # hold timing is measured on our clock at release, so gpiozero's hold thread is not needed
    button = Button(gpio.button, pull_up=True, pin_factory=factory)
    return Devices(lights, buzzer, button, factory, fallback)


class CueDriver:
    """Shows the cue for the current snapshot and steps its blink/beep patterns on the clock."""

    def __init__(self, devices: Devices, clock: Clock) -> None:
        self.devices = devices
        self.clock = clock
        self._lock = threading.Lock()
        self._cue = ""
        self._quiet = False
        self._tracks: dict[str, Track] = {}
        self._started = 0.0
        self._applied: dict[str, Value] = {}

    @property
    def cue(self) -> str:
        return self._cue

    def show(self, name: str, quiet: bool = False) -> None:
        """Switch to cue `name` (a key of CUES), restarting its pattern only if the cue changed; `quiet`
        silences the buzzer."""
        with self._lock:
            if name == self._cue and quiet == self._quiet:
                return
            restart = name != self._cue
            self._cue, self._quiet = name, quiet
            self._tracks = dict(CUES[name])
            if quiet:
                self._tracks["buzzer"] = SILENT
            if restart:
                self._started = self.clock.monotonic()
            self._apply(self.clock.monotonic())

    def step(self) -> None:
        """Apply the pattern values for 'now' (called by the service loop at `next_change`)."""
        with self._lock:
            self._apply(self.clock.monotonic())

    def next_change(self) -> float | None:
        """Monotonic time of the next pattern step, None when every output is steady."""
        with self._lock:
            if not self._tracks:
                return None
            t = self.clock.monotonic() - self._started
            soonest = min(track.value_at(t)[1] for track in self._tracks.values())
            return None if soonest == float("inf") else self.clock.monotonic() + soonest

    def _apply(self, now: float) -> None:
        t = now - self._started
        for channel in CHANNELS:
            value, _ = self._tracks[channel].value_at(t)
            if self._applied.get(channel, "unset") != value:
                self._set(channel, value)
                self._applied[channel] = value

    def _set(self, channel: str, value: Value) -> None:
        if channel == "buzzer":
            buzzer = self.devices.buzzer
            if isinstance(buzzer, TonalBuzzer):
                if value:
                    buzzer.play(Tone(str(value)))
                else:
                    buzzer.stop()
            else:
                buzzer.value = bool(value)
        else:
            getattr(self.devices.lights, channel).value = bool(value)

    def outputs(self) -> dict[str, str]:
        """Human-readable state of every output, for the status line and doctor (a note only where a tonal
        buzzer plays it; a plain buzzer is on or off)."""
        tonal = isinstance(self.devices.buzzer, TonalBuzzer)
        with self._lock:
            return {ch: ("off" if not v else str(v) if isinstance(v, str) and tonal else "on")
                    for ch, v in self._applied.items()}


class ButtonActions:
    """Teacher button: short press = pause/resume, hold >= hold_s = skip, hold >= quiet_hold_s = quiet toggle.

    The hold length is measured on the clock between press and release, so a held button acts on release.
    """

    def __init__(self, button: Button, clock: Clock, on_action: Callable[[str], None],
                 hold_s: float = 2.0, quiet_hold_s: float = 5.0) -> None:
        self.clock = clock
        self.on_action = on_action
        self.hold_s = hold_s
        self.quiet_hold_s = quiet_hold_s
        self._pressed_at: float | None = None
        button.when_pressed = self._pressed
        button.when_released = self._released

    def _pressed(self) -> None:
        self._pressed_at = self.clock.monotonic()

    def _released(self) -> None:
        if self._pressed_at is None:
            return
        held = self.clock.monotonic() - self._pressed_at
        self._pressed_at = None
        if held >= self.quiet_hold_s:
            action = "quiet"
        elif held >= self.hold_s:
            action = "skip"
        else:
            action = "toggle"
        log.info("button: %s (held %.1f s)", action, held)
        self.on_action(action)
