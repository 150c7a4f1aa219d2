"""Restart-resume: after a kill -9 or power cut the rotation comes back in the right phase and time."""

from __future__ import annotations

import json
from pathlib import Path

from edge.clock import FakeClock
from edge.rotation.engine import Engine
from edge.rotation.state import JsonStateFile
from tests.rotation.plans import make_plan


def reboot(clock: FakeClock, down_s: float) -> FakeClock:
    """A new boot: the monotonic clock starts elsewhere, wall time moved on by `down_s`."""
    return FakeClock(monotonic=5.0, wall=clock.time() + down_s)


def test_state_written_on_every_action_and_transition(tmp_path: Path, clock: FakeClock) -> None:
    store = JsonStateFile(tmp_path / "rotation.json")
    engine = Engine(clock, store)
    engine.start(make_plan())
    assert json.loads(store.path.read_text())["status"] == "running"
    clock.advance(850)
    engine.tick()
    state = json.loads(store.path.read_text())
    assert (state["stage"], state["stage_remaining_s"]) == ("work", 50)
    engine.pause()
    assert json.loads(store.path.read_text())["status"] == "paused"
    assert not list(tmp_path.glob(".rotation.json.*"))  # no temp files left behind


def test_resume_after_power_cut_counts_the_time_it_was_down(tmp_path: Path, clock: FakeClock) -> None:
    store = JsonStateFile(tmp_path / "rotation.json")
    engine = Engine(clock, store)
    engine.start(make_plan())
    clock.advance(100)
    engine.tick()  # nothing saved since the start: the saved remaining time is 900 s at t=0
    clock2 = reboot(clock, down_s=45)
    again = Engine(clock2, JsonStateFile(store.path))
    again.restore()
    s = again.snapshot()
    assert (s.status, s.phase, s.round) == ("running", "work", 1)
    assert s.stage_remaining_s == 900 - 100 - 45
    # and the rest of the plan follows from there
    clock2.advance(755)
    again.tick()
    assert (again.snapshot().phase, again.snapshot().round) == ("transition", 2)


def test_resume_after_a_long_outage_lands_in_a_later_round(tmp_path: Path, clock: FakeClock) -> None:
    store = JsonStateFile(tmp_path / "rotation.json")
    engine = Engine(clock, store)
    engine.start(make_plan())
    clock2 = reboot(clock, down_s=900 + 90 + 100)
    again = Engine(clock2, JsonStateFile(store.path))
    again.restore()
    s = again.snapshot()
    assert (s.phase, s.round, s.stage_remaining_s) == ("work", 2, 800)
    clock3 = reboot(clock2, down_s=10_000)
    third = Engine(clock3, JsonStateFile(store.path))
    third.restore()
    assert third.snapshot().status == "done"


def test_paused_rotation_does_not_lose_time_while_down(tmp_path: Path, clock: FakeClock) -> None:
    store = JsonStateFile(tmp_path / "rotation.json")
    engine = Engine(clock, store)
    engine.start(make_plan())
    clock.advance(870)
    engine.tick()
    engine.pause()
    again = Engine(reboot(clock, down_s=3600), JsonStateFile(store.path))
    again.restore()
    s = again.snapshot()
    assert (s.status, s.underlying_phase, s.remaining_s) == ("paused", "warning", 30)
    again.resume()
    assert again.snapshot().remaining_s == 30


def test_corrupt_state_resets_to_idle_with_a_fault(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "rotation.json"
    for junk in (b"{half a file", b"[1, 2]", b'{"version": 99, "status": "running", "quiet": false}',
                 b'{"version": 1, "status": "running", "quiet": false, "round": 7, "stage": "work",'
                 b' "plan": {"plan": {"name": "x"}}}'):
        path.write_bytes(junk)
        engine = Engine(clock, JsonStateFile(path))
        engine.restore()
        s = engine.snapshot()
        assert (s.status, s.fault) == ("idle", "saved rotation state was corrupt; the timer was reset")
        # the reset itself was saved, so the next restart is clean
        again = Engine(clock, JsonStateFile(path))
        again.restore()
        assert again.snapshot().fault is None


def test_quiet_mode_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    engine = Engine(clock, JsonStateFile(tmp_path / "r.json"))
    engine.set_quiet(True)
    again = Engine(clock, JsonStateFile(tmp_path / "r.json"))
    again.restore()
    assert again.snapshot().quiet is True
