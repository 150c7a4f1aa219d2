"""Runs only on a real Raspberry Pi with the LEDs, buzzer and button wired (EDGE_TEST_ON_PI=1).

Checks what mock pins cannot: that gpiozero finds a real pin library, and that the cue driver drives the
real pins (a person watching confirms the LEDs; the test checks the pin states read back).
"""

from __future__ import annotations

import os

import pytest

from edge.clock import FakeClock
from edge.config import GpioConfig
from edge.cues.driver import CueDriver, open_devices
from edge.rotation.engine import Engine
from tests.rotation.plans import make_plan

pytestmark = pytest.mark.skipif(os.environ.get("EDGE_TEST_ON_PI") != "1",
                                reason="hardware test: set EDGE_TEST_ON_PI=1 on a wired Raspberry Pi")


def test_real_pin_factory_and_cues() -> None:
    devices = open_devices(GpioConfig())
    try:
        assert not devices.fallback, f"no pin library found: {devices.factory_name}"
        assert devices.factory_name != "MockFactory"
        clock = FakeClock()
        engine = Engine(clock)
        driver = CueDriver(devices, clock)
        engine.subscribe(driver.show)
        engine.start(make_plan())
        assert devices.lights.green.value == 1 and devices.lights.red.value == 0
        engine.pause()
        assert devices.lights.amber.value == 1 and devices.lights.green.value == 0
    finally:
        devices.close()
