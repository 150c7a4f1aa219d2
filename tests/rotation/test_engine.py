"""The pure engine on a fake clock: boundaries, no drift, teacher actions at awkward moments."""

from __future__ import annotations

import pytest

from edge.clock import FakeClock
from edge.exc import RotationError
from edge.rotation.engine import Engine, Snapshot
from edge.rotation.plan import Plan
from tests.rotation.plans import make_plan

Boundary = tuple[float, str, int]


def run_to_end(engine: Engine, clock: FakeClock, t0: float) -> list[Boundary]:
    """Jump the clock to each deadline and record (offset, phase, round) after it."""
    seen: list[Boundary] = [(clock.monotonic() - t0, engine.snapshot().phase, engine.snapshot().round)]
    for _ in range(1000):
        deadline = engine.next_deadline()
        if deadline is None:
            return seen
        clock.advance(deadline - clock.monotonic())
        assert engine.tick()
        s = engine.snapshot()
        seen.append((round(clock.monotonic() - t0, 9), s.phase, s.round))
    raise AssertionError("plan did not end")


def expected(plan: Plan, shift_after: float = -1, by: float = 0) -> list[Boundary]:
    out = [(s.start_s + (by if s.start_s > shift_after >= 0 else 0), s.phase, s.round) for s in plan.timeline()]
    out.append((plan.total_s + (by if shift_after >= 0 else 0), "done", plan.round_count))
    return out


@pytest.mark.parametrize(
    "plan",
    [
        make_plan(),
        make_plan(stations=4, groups=2, work_minutes=10, warning=30, transition=45),
        make_plan(stations=2, groups=5, work_minutes=0.5, warning=0, transition=0, rounds=3),
        make_plan(stations=3, groups=3, work_minutes=1, warning=59, transition=1),
    ],
)
def test_every_boundary_of_several_plans(plan: Plan, clock: FakeClock) -> None:
    engine = Engine(clock)
    t0 = clock.monotonic()
    engine.start(plan)
    assert run_to_end(engine, clock, t0) == expected(plan)


def test_two_hour_plan_has_no_drift_when_ticked_irregularly(clock: FakeClock) -> None:
    plan = make_plan(stations=5, groups=5, work_minutes=22, warning=60, transition=90)
    assert plan.total_s == 6960  # almost two hours
    engine = Engine(clock)
    t0 = clock.monotonic()
    engine.start(plan)
    want = iter(expected(plan)[1:])
    nxt = next(want)
    changes = []
    # tick every 0.7 s like a sloppy loop would; the deadlines must still be the plan's, to the millisecond
    while engine.snapshot().status == "running":
        before = engine.snapshot()
        clock.advance(0.7)
        engine.tick()
        after = engine.snapshot()
        if after.phase != before.phase:
            changes.append((after.phase, after.round))
            assert before.phase_deadline is not None
            assert abs(before.phase_deadline - t0 - nxt[0]) < 1e-3
            assert (after.phase, after.round) == nxt[1:]
            nxt = next(want, nxt)
    assert len(changes) == len(expected(plan)) - 1


def test_pause_shifts_only_what_follows(clock: FakeClock) -> None:
    plan = make_plan()
    engine = Engine(clock)
    t0 = clock.monotonic()
    engine.start(plan)
    clock.advance(950.25)
    engine.tick()
    engine.pause()
    snap = engine.snapshot()
    assert (snap.phase, snap.underlying_phase, snap.round) == ("paused", "transition", 2)
    frozen = snap.remaining_s
    clock.advance(123.5)
    assert engine.tick() is False
    assert engine.snapshot().remaining_s == frozen
    assert engine.next_deadline() is None
    engine.resume()
    seen = run_to_end(engine, clock, t0)
    assert seen[1:] == [b for b in expected(plan, shift_after=950.25, by=123.5) if b[0] > 950.25 + 123.5]


def test_skip_during_warning_goes_to_transition_with_full_length(clock: FakeClock) -> None:
    engine = Engine(clock)
    engine.start(make_plan())
    clock.advance(900 - 30)  # 30 s into... the warning (last 60 s of 900)
    engine.tick()
    assert engine.snapshot().phase == "warning"
    engine.skip()
    s = engine.snapshot()
    assert (s.phase, s.round, s.remaining_s) == ("transition", 2, 90)
    engine.skip()
    s = engine.snapshot()
    assert (s.phase, s.round, s.remaining_s) == ("work", 2, 840)
    engine.skip()
    assert (engine.snapshot().phase, engine.snapshot().remaining_s) == ("warning", 60)


def test_skip_in_last_round_warning_ends_the_plan(clock: FakeClock) -> None:
    engine = Engine(clock)
    engine.start(make_plan(stations=1, groups=1))
    engine.skip()
    engine.skip()
    assert engine.snapshot().status == "done"


def test_add_a_minute_in_the_last_second(clock: FakeClock) -> None:
    engine = Engine(clock)
    t0 = clock.monotonic()
    engine.start(make_plan())
    clock.advance(899)
    engine.tick()
    assert (engine.snapshot().phase, engine.snapshot().remaining_s) == ("warning", 1)
    engine.extend()
    # 61 s left in the work period: 1 s of work, then the full one-minute warning again
    s = engine.snapshot()
    assert (s.phase, s.remaining_s, s.stage_remaining_s) == ("work", 1, 61)
    seen = run_to_end(engine, clock, t0)
    assert seen[1:4] == [(900, "warning", 1), (960, "transition", 2), (1050, "work", 2)]
    assert seen[-1] == (3 * 900 + 2 * 90 + 60, "done", 3)


def test_add_a_minute_during_transition_and_while_paused(clock: FakeClock) -> None:
    engine = Engine(clock)
    engine.start(make_plan())
    clock.advance(950)
    engine.tick()
    engine.extend()
    assert engine.snapshot().remaining_s == 40 + 60
    engine.pause()
    engine.extend()
    assert engine.snapshot().remaining_s == 40 + 120
    clock.advance(500)
    engine.resume()
    assert engine.snapshot().remaining_s == 160


def test_restart_round_in_warning_and_in_transition(clock: FakeClock) -> None:
    engine = Engine(clock)
    engine.start(make_plan())
    clock.advance(880)
    engine.tick()
    engine.restart_round()
    s = engine.snapshot()
    assert (s.phase, s.round, s.stage_remaining_s) == ("work", 1, 900)
    clock.advance(930)  # into the transition to round 2
    engine.tick()
    assert engine.snapshot().phase == "transition"
    engine.restart_round()
    s = engine.snapshot()
    assert (s.phase, s.round, s.stage_remaining_s) == ("work", 2, 900)


def test_skip_while_paused_stays_paused(clock: FakeClock) -> None:
    engine = Engine(clock)
    engine.start(make_plan())
    engine.pause()
    engine.skip()
    s = engine.snapshot()
    assert (s.status, s.underlying_phase, s.remaining_s) == ("paused", "warning", 60)
    clock.advance(1000)
    engine.resume()
    assert engine.snapshot().remaining_s == 60


def test_end_and_actions_that_do_not_apply(clock: FakeClock) -> None:
    engine = Engine(clock)
    for action in ("pause", "resume", "extend", "skip", "restart", "end"):
        with pytest.raises(RotationError, match="the rotation is idle"):
            engine.act(action)
    with pytest.raises(RotationError, match="unknown action"):
        engine.act("explode")
    engine.start(make_plan())
    with pytest.raises(RotationError, match="end the running plan first"):
        engine.start(make_plan())
    with pytest.raises(RotationError, match="cannot resume"):
        engine.resume()
    engine.end()
    assert engine.snapshot().status == "done"
    engine.start(make_plan())  # a finished rotation can start again
    assert engine.snapshot().status == "running"


def test_listeners_see_every_change_in_order(clock: FakeClock) -> None:
    engine = Engine(clock)
    seen: list[Snapshot] = []
    engine.subscribe(seen.append)
    engine.start(make_plan(stations=1, groups=1, work_minutes=2, warning=60))
    clock.advance(60)
    engine.tick()
    engine.pause()
    engine.resume()
    clock.advance(60)
    engine.tick()
    assert [s.phase for s in seen] == ["work", "warning", "paused", "warning", "done"]
    assert [s.seq for s in seen] == sorted({s.seq for s in seen})
