"""Cue latency: delay from each phase deadline to the pin change on mock pins, with the cores loaded.

Runs the real rotation service thread (system clock, gpiozero MockFactory) through many short phases and
reads the pins' own change history. Prints p50/p99/max idle, under load (2 busy processes per core) with
ordinary scheduling, and under the same load with the cue thread at real-time priority (SCHED_FIFO, what
`rotation.realtime_priority` does on the Pi; needs root or RLIMIT_RTPRIO here). Target: p99 under 20 ms loaded.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import tempfile
import time
from typing import Any

from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge.config import parse_config
from edge.rotation.plan import Group, Plan, Station
from edge.rotation.service import RotationService

PIN_FOR_PHASE = {"work": 11, "warning": 10, "transition": 9}  # green, amber, red turn on


def burn(stop: Any) -> None:
    """Keep one core busy until told to stop."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def pin_on_times(factory: Any, pin: int, cleared_at: float) -> list[float]:
    """Absolute monotonic times at which the pin went on (MockPin stores time since the previous change)."""
    t, out = cleared_at, []
    for state in factory.pin(pin).states[1:]:
        t += state.timestamp
        if state.state:
            out.append(t)
    return out


def measure(rounds: int, realtime: int = 0) -> list[float]:
    """Latencies (s) of every phase boundary of a plan with 0.3 s work, 0.1 s warning, 0.1 s transition."""
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    factory = Device.pin_factory
    stations = tuple(Station(f"S{i}", "offline") for i in range(3))
    plan = Plan(name="bench", work_minutes=0.3 / 60, warning_seconds=0.1, transition_seconds=0.1,
                rounds=rounds, stations=stations, groups=(Group("A"),))
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config({"unit": {"state_dir": tmp}, "rotation": {"realtime_priority": realtime}}, "<bench>")
        service = RotationService(config)
        for pin in PIN_FOR_PHASE.values():
            factory.pin(pin).clear_states()
        cleared = {pin: factory.pin(pin)._last_change for pin in PIN_FOR_PHASE.values()}
        service.start()
        service.engine.start(plan)
        snap = service.engine.snapshot()
        assert snap.phase_deadline is not None
        origin = snap.phase_deadline - plan.timeline()[0].end_s
        time.sleep(plan.total_s + 0.5)
        service.close()
    ons_by_pin = {pin: pin_on_times(factory, pin, cleared[pin]) for pin in PIN_FOR_PHASE.values()}
    factory.reset()
    Device.pin_factory = None
    latencies = []
    for phase, pin in PIN_FOR_PHASE.items():
        starts = [origin + s.start_s for s in plan.timeline() if s.phase == phase]
        if phase == "work":
            starts = starts[1:]  # the first green is the start action itself, not a deadline
        ons = ons_by_pin[pin]
        ons = ons[1:] if phase == "work" else ons
        assert len(ons) >= len(starts), (phase, len(ons), len(starts))
        # for each deadline, the first "on" at or after it (blinks add more "on"s in between)
        for d in starts:
            latencies.append(min(t for t in ons if t >= d - 1e-6) - d)
    return latencies


def summary(name: str, lat: list[float]) -> tuple[float, float, float]:
    ms = sorted(x * 1000 for x in lat)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name:<22} boundaries {len(ms):5d}   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   max {ms[-1]:6.2f} ms")
    return p50, p99, ms[-1]


def realtime_permitted() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except OSError:
        return False
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    return True


def main() -> None:
    rounds = int(os.environ.get("BENCH_CUE_ROUNDS", "60"))
    print(f"cue latency: deadline -> pin change, {rounds} rounds x 3 boundaries, mock pins, system clock")
    idle = summary("idle", measure(rounds))
    stop = mp.Event()
    loaders = [mp.Process(target=burn, args=(stop,), daemon=True) for _ in range(2 * (os.cpu_count() or 2))]
    for p in loaders:
        p.start()
    try:
        loaded = summary(f"{len(loaders)} busy processes", measure(rounds))
        if not realtime_permitted():
            raise SystemExit("bench: SCHED_FIFO is not permitted here (run as root): the real-time figure is "
                             "what this benchmark is for")
        rt = summary("same load, SCHED_FIFO", measure(rounds, realtime=10))
    finally:
        stop.set()
        for p in loaders:
            p.join(timeout=5)
    print(f"loaded/idle p99 {loaded[1] / max(idle[1], 1e-9):.2f}x; real-time/ordinary p99 under load "
          f"{rt[1] / max(loaded[1], 1e-9):.2f}x; target p99 < 20 ms loaded: "
          f"{'MET' if min(loaded[1], rt[1]) < 20 else 'NOT MET'} (ordinary {loaded[1]:.2f} ms, real-time "
          f"{rt[1]:.2f} ms)")


if __name__ == "__main__":
    main()
