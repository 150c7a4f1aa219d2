"""Choosing the gpiozero pin factory: the configured one, gpiozero's default, or mock pins with a warning."""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Any

from gpiozero import Device
from gpiozero.exc import BadPinFactory, PinFactoryFallback
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.exc import ConfigError, NoGPIOWarning

_warned = False


def _mock() -> Any:
    # PWM-capable mock pins so a TonalBuzzer works too
    return MockFactory(pin_class=MockPWMPin)


def _warn_no_gpio(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        msg = f"no GPIO on this host ({reason}); running on gpiozero mock pins"
        warnings.warn(msg, NoGPIOWarning, stacklevel=3)


def resolve_pin_factory(name: str, source: str = "<config>") -> tuple[Any, bool]:
    """The factory to use and whether it is a fallback to mock pins.

    An already-set `Device.pin_factory` (tests, GPIOZERO_PIN_FACTORY) wins; "mock" means mock pins on purpose.
    """
    if Device.pin_factory is not None:
        return Device.pin_factory, False
    if name == "mock":
        return _mock(), False
    if name:
        for ep in entry_points(group="gpiozero_pin_factories"):
            if ep.name.lower() == name.lower():
                try:
                    return ep.load()(), False
                except Exception as e:  # the pin library's own error: no GPIO here
                    _warn_no_gpio(f"pin factory {name!r} failed: {e}")
                    return _mock(), True
        known = sorted({ep.name for ep in entry_points(group="gpiozero_pin_factories")})
        raise ConfigError(source, "gpio.pin_factory", f"unknown pin factory {name!r} (known: {', '.join(known)})")
    with warnings.catch_warnings():
        # gpiozero warns once per library it tries; we say it once, in our own words
        warnings.simplefilter("ignore", PinFactoryFallback)
        try:
            # the private default-factory probe is what gpiozero itself runs on first device construction
            return Device._default_pin_factory(), False
        except BadPinFactory as e:
            _warn_no_gpio(str(e))
            return _mock(), True


def factory_name(factory: Any) -> str:
    return type(factory).__name__
