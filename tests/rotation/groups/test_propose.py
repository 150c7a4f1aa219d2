"""propose(), apply_to_plan(), revise(): seeded classes with known mastery and property tests."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.exc import GroupingError
from edge.rotation.groups import solve
from edge.rotation.groups.model import Constraints, Options, Proposal, StudentScore
from edge.rotation.groups.naming import PALETTE
from edge.rotation.groups.propose import apply_to_plan, changes, propose, revise
from edge.rotation.plan import Group, Plan, Station


def make_plan(groups: Mapping[str, list[str]] | None = None, kinds: tuple[str, ...] = ("online", "teacher",
              "offline", "offline")) -> Plan:
    names = list(groups) if groups else [f"G{i}" for i in range(len(kinds))]
    return Plan(name="Block", work_minutes=15, stations=tuple(Station(f"St-{k}-{i}", k) for i, k in enumerate(kinds)),
                groups=tuple(Group(n, tuple((groups or {}).get(n, ()))) for n in names))


def seeded_scores(n: int, seed: int, evidence: int = 5) -> dict[str, StudentScore]:
    rng = random.Random(seed)
    return {f"s{i:03d}": StudentScore(round(rng.random(), 3), evidence) for i in range(n)}


def sizes_ok(p: Proposal, lo: int, hi: int) -> bool:
    return all(lo <= len(g.students) <= hi for g in p.groups)


@pytest.mark.parametrize("seed", range(25))
def test_optimum_equals_brute_force_on_small_classes(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(6, 12)
    k = rng.choice([k for k in (2, 3, 4) if k * 2 <= n <= k * 5])
    scores = seeded_scores(n, seed)
    p = propose("frac", scores, options=Options(groups=k, min_size=2, max_size=5, margin=0))
    brute, _ = solve.brute_force_partition([s.p_known or 0.0 for s in scores.values()], k, 2, 5)
    assert p.sse == pytest.approx(brute, abs=1e-9)
    assert sizes_ok(p, 2, 5) and len(p.groups) == k


def test_lowest_mean_group_starts_at_the_teacher_station_and_apply_keeps_it() -> None:
    for teacher_at in range(4):
        kinds = ["offline"] * 4
        kinds[teacher_at] = "teacher"
        plan = make_plan(kinds=tuple(kinds))
        p = propose("frac", seeded_scores(20, teacher_at), plan=plan)
        lowest = min(p.groups, key=lambda g: g.mean_p_known or 0.0)
        assert lowest.first_station == plan.stations[teacher_at].name
        assert p.teacher_group == lowest.name
        new = apply_to_plan(plan, p)
        assert new.assignments(1)[lowest.name] == plan.stations[teacher_at].name
        assert new.stations == plan.stations and new.work_minutes == plan.work_minutes
        assert {g.name: g.members for g in new.groups} == {g.name: g.students for g in p.groups}


def test_apply_to_another_plan_turns_the_groups_for_its_teacher_station() -> None:
    p = propose("frac", seeded_scores(20, 1), plan=make_plan())
    other = make_plan(kinds=("teacher", "online", "offline", "offline"))
    lowest = min(p.groups, key=lambda g: g.mean_p_known or 0.0)
    assert apply_to_plan(other, p).assignments(1)[lowest.name] == "St-teacher-0"


def test_names_follow_the_students_not_the_rank() -> None:
    scores = seeded_scores(24, 5)
    first = propose("frac", scores, options=Options(groups=4))
    assert {g.name for g in first.groups} <= set(PALETTE)
    # carry the groups into a plan with the same names: everybody keeps their group name, nobody moves
    plan = make_plan({g.name: list(g.students) for g in first.groups})
    again = propose("frac", scores, plan=plan)
    assert again.group_of() == first.group_of() and again.moved == ()
    # renamed plan groups: the new groups take the plan's names by overlap, whatever their scores
    renamed = make_plan({f"Team {i}": list(g.students) for i, g in enumerate(first.groups)})
    third = propose("frac", scores, plan=renamed)
    assert {g.name: g.students for g in third.groups} == {f"Team {i}": g.students for i, g in enumerate(first.groups)}


def test_identical_input_gives_identical_groups_and_names() -> None:
    scores = {f"s{i:02d}": StudentScore(0.5 if i % 3 else 0.2, 4) for i in range(18)}  # many ties
    plan = make_plan()
    a = propose("frac", scores, plan=plan, options=Options(groups=3))
    shuffled = dict(sorted(scores.items(), key=lambda kv: random.Random(9).random()))
    b = propose("frac", shuffled, students=list(reversed(list(scores))), plan=plan, options=Options(groups=3))
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())


def test_margin_keeps_boundary_students_in_their_group() -> None:
    values = [0.20, 0.22, 0.24, 0.26, 0.46, 0.52, 0.72, 0.74, 0.76, 0.78]
    scores = {f"s{i}": StudentScore(v, 6) for i, v in enumerate(values)}
    # s4 (0.46) is in the upper group now; the optimum puts it with the low ones. The boundary between the
    # DP's blocks is (0.46 + 0.52) / 2 = 0.49, 0.03 away from s4's score.
    current = {"s0": "Low", "s1": "Low", "s2": "Low", "s3": "Low", "s4": "High", "s5": "High",
               "s6": "High", "s7": "High", "s8": "High", "s9": "High"}
    opts = Options(groups=2, min_size=3, max_size=7)
    plain = propose("frac", scores, current=current, options=Options(groups=2, min_size=3, max_size=7, margin=0))
    assert plain.group_of()["s4"] == "Low" and [m.student for m in plain.moved] == ["s4"]
    kept = propose("frac", scores, current=current, options=opts)
    assert kept.group_of()["s4"] == "High" and kept.kept == ("s4",) and kept.moved == ()
    assert sizes_ok(kept, 3, 7)
    # outside the margin the student moves
    far = propose("frac", scores, current=current, options=Options(groups=2, min_size=3, max_size=7, margin=0.02))
    assert far.group_of()["s4"] == "Low"


def test_margin_swaps_boundary_students_when_sizes_are_full() -> None:
    # sizes fixed at 3: the DP splits [0.1, 0.2, 0.45 | 0.5, 0.8, 0.9] (boundary 0.475); s2 (now in B) and s3
    # (now in A) both lie within 0.05 of it and cross it the other way: neither can move alone, so they swap
    values = [0.1, 0.2, 0.45, 0.5, 0.8, 0.9]
    scores = {f"s{i}": StudentScore(v, 6) for i, v in enumerate(values)}
    current = {"s0": "A", "s1": "A", "s2": "B", "s3": "A", "s4": "B", "s5": "B"}
    p = propose("frac", scores, current=current, options=Options(groups=2, min_size=3, max_size=3))
    assert p.group_of() == current and p.kept == ("s2", "s3") and p.moved == ()
    # without the margin both move
    q = propose("frac", scores, current=current, options=Options(groups=2, min_size=3, max_size=3, margin=0))
    assert [m.student for m in q.moved] == ["s2", "s3"] and q.kept == ()
    # one student alone at a full boundary cannot be kept: sizes win
    alone = dict(current, s3="B", s2="B", s5="A")
    r = propose("frac", scores, current=alone, options=Options(groups=2, min_size=3, max_size=3))
    assert all(len(g.students) == 3 for g in r.groups) and "s2" not in r.kept


def test_thin_students_are_flagged_and_keep_their_group() -> None:
    scores = seeded_scores(16, 2)
    scores["s000"] = StudentScore(0.99, 1)  # high but thin: must not be placed by score
    scores["s001"] = StudentScore(None, 0)
    current = {s: ("North" if i % 2 else "South") for i, s in enumerate(sorted(scores))}
    p = propose("frac", scores, current=current, options=Options(groups=3, min_size=3, max_size=7))
    assert p.thin == ("s000", "s001")
    where = p.group_of()
    assert where["s000"] == "South" and where["s001"] == "North"
    placed = [s for s in scores if s not in p.thin]
    expected = sum(g_sse for g_sse in (
        solve.block_sse([scores[s].p_known or 0 for s in g.students if s in placed]) for g in p.groups))
    assert p.sse == pytest.approx(expected)
    assert sizes_ok(p, 3, 7)


def test_thin_without_a_group_fill_the_group_with_room() -> None:
    scores = seeded_scores(10, 4)
    scores["new1"] = StudentScore(None, 0)
    scores["new2"] = StudentScore(0.5, 2)
    p = propose("frac", scores, options=Options(groups=3, min_size=4, max_size=4))
    assert set(p.thin) == {"new1", "new2"} and sizes_ok(p, 4, 4)


def test_mixed_mode_balances_means() -> None:
    scores = seeded_scores(24, 11)
    homo = propose("frac", scores, options=Options(groups=4))
    mixed = propose("frac", scores, options=Options(groups=4, mode="mixed"))
    spread = [max(m) - min(m) for m in ([g.mean_p_known or 0 for g in p.groups] for p in (homo, mixed))]
    assert spread[1] < 0.05 < spread[0]
    assert sizes_ok(mixed, 3, 6) and mixed.mode == "mixed"
    assert mixed.sse > homo.sse  # balanced means = spread inside the groups


def test_pins_absent_and_apart_on_a_known_class() -> None:
    scores = seeded_scores(20, 8)
    order = sorted(scores, key=lambda s: scores[s].p_known or 0)
    lowest, low2, top = order[0], order[1], order[-1]
    c = Constraints(pins={top: "Blue"}, apart=((lowest, low2),), absent=frozenset({order[5]}))
    p = propose("frac", scores, options=Options(groups=4), constraints=c)
    where = p.group_of()
    assert where[top] == "Blue" and where[lowest] != where[low2] and order[5] not in where
    assert p.absent == (order[5],) and sizes_ok(p, 3, 6)


@st.composite
def classes(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    """(seed, n, k, lo, hi) with sizes that usually fit the class, sometimes not."""
    n = draw(st.integers(4, 30))
    k = draw(st.integers(2, min(6, n)))
    lo = draw(st.integers(1, max(1, n // k + draw(st.integers(0, 1)))))
    hi = max(lo, -(-n // k) + draw(st.integers(-1, 3)))
    return draw(st.integers(0, 10_000)), n, k, lo, hi


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cls=classes(), pins=st.lists(st.tuples(st.integers(0, 29), st.integers(0, 5)), max_size=6),
       pairs=st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29)).filter(lambda t: t[0] != t[1]), max_size=8),
       absent=st.lists(st.integers(0, 29), max_size=4), thin=st.lists(st.integers(0, 29), max_size=5),
       mixed=st.booleans())
def test_constraints_and_sizes_always_hold(cls: tuple[int, int, int, int, int], pins: list[tuple[int, int]],
                                          pairs: list[tuple[int, int]], absent: list[int], thin: list[int],
                                          mixed: bool) -> None:
    seed, n, k, lo, hi = cls
    scores = seeded_scores(n, seed)
    ids = sorted(scores)
    for i in thin:
        if i < n:
            scores[ids[i]] = StudentScore(scores[ids[i]].p_known, 1)
    gone = frozenset(ids[i] for i in absent if i < n)
    pin_map = {ids[i]: f"P{g % k}" for i, g in pins if i < n and ids[i] not in gone}
    apart = tuple((ids[a], ids[b]) for a, b in pairs if a < n and b < n)
    current = {s: f"P{j % k}" for j, s in enumerate(ids) if j % 4}
    c = Constraints(pins=pin_map, apart=apart, absent=gone)
    try:
        p = propose("frac", scores, current=current, constraints=c,
                    options=Options(groups=k, min_size=lo, max_size=hi, mode="mixed" if mixed else "homogeneous"))
    except GroupingError as e:
        present = n - len(gone)
        if not (k <= present and k * lo <= present <= k * hi):
            return  # the class does not fit the sizes: an error is right
        if n - len(gone) <= 9:  # small enough to check exhaustively that no grouping meets the constraints
            assert not feasible_exhaustive([s for s in ids if s not in gone], k, lo, hi, pin_map, apart), e
        else:
            assert any(w in str(e) for w in ("kept apart", "keep-apart", "pinned")), e
        return
    where = p.group_of()
    assert set(where) == set(ids) - gone
    assert len(p.groups) == k and sizes_ok(p, lo, hi)
    for s, g in pin_map.items():
        assert where[s] == g
    for a, b in apart:
        if a not in gone and b not in gone:
            assert where[a] != where[b]
    assert set(p.thin) == {ids[i] for i in thin if i < n} - gone


def feasible_exhaustive(students: list[str], k: int, lo: int, hi: int, pins: Mapping[str, str],
                        apart: tuple[tuple[str, str], ...]) -> bool:
    """Is there ANY grouping meeting sizes, pins (pinned names → distinct groups) and keep-apart pairs?"""
    labels = {name: i for i, name in enumerate(sorted(set(pins.values())))}
    if len(labels) > k:
        return False
    index = {s: i for i, s in enumerate(students)}
    pairs = [(index[a], index[b]) for a, b in apart if a in index and b in index]
    for combo in itertools.product(range(k), repeat=len(students)):
        if any(combo[index[s]] != labels[g] for s, g in pins.items()):
            continue
        if any(combo[a] == combo[b] for a, b in pairs):
            continue
        if all(lo <= combo.count(g) <= hi for g in range(k)):
            return True
    return False


@pytest.mark.parametrize("seed", range(40))
def test_small_feasible_constraints_are_always_met(seed: int) -> None:
    """Dense constraints on small classes: propose succeeds exactly when some grouping exists."""
    rng = random.Random(seed)
    n = rng.randint(5, 8)
    k = rng.randint(2, 3)
    lo = rng.randint(1, n // k)
    hi = rng.randint(-(-n // k), n)
    scores = seeded_scores(n, seed)
    ids = sorted(scores)
    pins = {s: f"P{rng.randint(0, k - 1)}" for s in rng.sample(ids, rng.randint(0, 3))}
    apart = tuple((a, b) for a, b in (rng.sample(ids, 2) for _ in range(rng.randint(1, 7))))
    c = Constraints(pins=pins, apart=apart)
    possible = feasible_exhaustive(ids, k, lo, hi, pins, apart)
    try:
        p = propose("frac", scores, options=Options(groups=k, min_size=lo, max_size=hi), constraints=c)
    except GroupingError:
        assert not possible
        return
    assert possible
    where = p.group_of()
    assert all(where[s] == g for s, g in pins.items()) and all(where[a] != where[b] for a, b in apart)
    assert sizes_ok(p, lo, hi)


def test_conflicting_constraints_are_errors_not_violations() -> None:
    scores = seeded_scores(6, 1)
    ids = sorted(scores)
    with pytest.raises(GroupingError, match="pinned to the same group"):
        propose("frac", scores, options=Options(groups=2, min_size=3, max_size=3),
                constraints=Constraints(pins={ids[0]: "A", ids[1]: "A"}, apart=((ids[0], ids[1]),)))
    # three students pairwise apart cannot fit 2 groups
    with pytest.raises(GroupingError, match="keep-apart"):
        propose("frac", scores, options=Options(groups=2, min_size=3, max_size=3),
                constraints=Constraints(apart=((ids[0], ids[1]), (ids[1], ids[2]), (ids[0], ids[2]))))
    with pytest.raises(GroupingError, match="more than max_size"):
        propose("frac", scores, options=Options(groups=2, min_size=3, max_size=3),
                constraints=Constraints(pins={s: "A" for s in ids[:4]}))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"options": Options(groups=7)}, "more than the 6 students"),
    ({"options": Options(groups=2, min_size=4, max_size=6)}, "cannot make 2 groups of 4 to 6"),
    ({"options": Options(groups=41)}, "groups must be a whole number in \\[1, 40\\]"),
    ({"options": Options(groups=2, min_size=5, max_size=4)}, "min_size 5 is larger than max_size 4"),
    ({"options": Options(groups=2, max_size=41)}, "max_size must be"),
    ({"options": Options(groups=2, margin=0.9)}, "margin must be"),
    ({"options": Options(groups=2, mode="random")}, "mode must be one of"),
    ({"options": Options(groups=2), "constraints": Constraints(pins={"nobody": "A"})}, "not in the class"),
    ({"options": Options(groups=2), "constraints": Constraints(absent=frozenset({"x" * 65}))}, "at most 64 characters"),
    ({"options": Options(groups=2), "students": ["s000", "bad\x07id"]}, "must not contain control"),
    ({}, "give the number of groups"),
])
def test_bad_input_is_a_clear_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(GroupingError, match=message):
        propose("frac", seeded_scores(6, 1), **kwargs)


def test_too_many_students_is_an_error() -> None:
    with pytest.raises(GroupingError, match="at most 500 students"):
        propose("frac", seeded_scores(501, 1), options=Options(groups=40, min_size=1, max_size=40))


def test_revise_and_changes() -> None:
    p = propose("frac", seeded_scores(12, 3), plan=make_plan(), options=Options(groups=3))
    groups = [(g.name, list(g.students)) for g in p.groups]
    moved = groups[0][1].pop()
    groups[1][1].append(moved)
    r = revise(p, groups, make_plan())
    assert changes(p, r) == (changes(p, r)[0],) and changes(p, r)[0].student == moved
    assert changes(p, r)[0].source == groups[0][0] and changes(p, r)[0].target == groups[1][0]
    lowest = min(r.groups, key=lambda g: g.mean_p_known or 0.0)
    assert lowest.first_station == "St-teacher-1" and r.sse >= p.sse - 1e-12
    with pytest.raises(GroupingError, match="in no group"):
        revise(p, [(groups[0][0], groups[0][1])])
    with pytest.raises(GroupingError, match="is in both"):
        revise(p, [*groups, ("Extra", [moved])])


def test_json_shape() -> None:
    p = propose("frac", seeded_scores(9, 3), plan=make_plan(kinds=("online", "teacher", "offline")))
    doc = p.to_json()
    assert set(doc) >= {"skill", "mode", "groups", "thin", "moved", "sse"}
    assert doc["skill"] == "frac" and doc["mode"] == "homogeneous" and len(doc["groups"]) == 3
    for g in doc["groups"]:
        assert set(g) == {"name", "students", "mean_p_known", "first_station"}
    assert isinstance(doc["sse"], float)
    json.dumps(doc)


def test_constraints_the_optimum_already_meets_cost_nothing() -> None:
    scores = seeded_scores(24, 21)
    free = propose("frac", scores, options=Options(groups=4, margin=0))
    where = free.group_of()
    ids = sorted(scores)
    apart = tuple((a, b) for a, b in itertools.combinations(ids, 2) if where[a] != where[b])[:10]
    pins = {ids[0]: where[ids[0]], ids[5]: where[ids[5]]}
    held = propose("frac", scores, options=Options(groups=4, margin=0), constraints=Constraints(pins=pins, apart=apart))
    assert held.group_of() == where and held.sse == pytest.approx(free.sse)


def test_repair_moves_the_cheapest_student_and_improves_after() -> None:
    # two tight clusters; keeping the two lowest apart must cost one swap across the boundary, not a reshuffle
    values = [0.10, 0.11, 0.12, 0.13, 0.80, 0.81, 0.82, 0.83]
    scores = {f"s{i}": StudentScore(v, 5) for i, v in enumerate(values)}
    p = propose("frac", scores, options=Options(groups=2, min_size=4, max_size=4, margin=0),
                constraints=Constraints(apart=(("s0", "s1"),)))
    low = next(set(g.students) for g in p.groups if "s0" in g.students)
    assert "s1" not in low and len(low & {"s2", "s3"}) == 2
    best_possible = solve.block_sse([0.10, 0.12, 0.13, 0.80]) + solve.block_sse([0.11, 0.81, 0.82, 0.83])
    assert p.sse == pytest.approx(best_possible)


def test_pinning_to_a_shown_group_keeps_the_other_names() -> None:
    """The teacher page's flow: show a proposal, pin one student to another shown group, propose again."""
    scores = seeded_scores(20, 33)
    plan = make_plan()
    shown = propose("frac", scores, plan=plan, options=Options(margin=0))
    where = shown.group_of()
    student = sorted(scores)[3]
    target = next(g.name for g in shown.groups if g.name != where[student])
    again = propose("frac", scores, plan=plan, options=Options(margin=0),
                    constraints=Constraints(pins={student: target}))
    after = again.group_of()
    assert after[student] == target
    assert {g.name for g in again.groups} == {g.name for g in shown.groups}
    assert len([s for s in where if where[s] != after[s]]) <= 2  # the pinned student and at most one to make room
