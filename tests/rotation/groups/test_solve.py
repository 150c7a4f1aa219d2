"""The solvers on plain numbers: the DP equals brute force over all partitions, sizes within bounds, the
name matching is an exact assignment, mixed mode balances means."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.rotation.groups import naming, solve


def feasible(n: int, k: int, lo: int, hi: int) -> bool:
    return k * lo <= n <= k * hi


def seeded_classes() -> list[tuple[list[float], int, int, int]]:
    """Seeded classes up to 12 students with every feasible (k, lo, hi) of a small grid; some with tied scores."""
    rng = random.Random(14)
    cases = []
    for n in range(2, 13):
        for k in range(1, min(n, 4) + 1):
            for lo, hi in ((1, 6), (2, 4), (3, 6), (1, 3), (2, 2)):
                if not feasible(n, k, lo, hi):
                    continue
                if n >= 11 and (k, lo, hi) not in ((3, 3, 6), (4, 2, 4), (2, 3, 6)):
                    continue  # the largest classes: three settings keep the brute force quick
                digits = rng.choice((1, 3))  # 1 decimal: many ties
                values = sorted(round(rng.random(), digits) for _ in range(n))
                cases.append((values, k, lo, hi))
    return cases


@pytest.mark.parametrize(("values", "k", "lo", "hi"), seeded_classes())
def test_dp_equals_brute_force(values: list[float], k: int, lo: int, hi: int) -> None:
    sizes = solve.contiguous_partition(values, k, lo, hi)
    assert len(sizes) == k and sum(sizes) == len(values)
    assert all(lo <= s <= hi for s in sizes)
    brute, groups = solve.brute_force_partition(values, k, lo, hi)
    assert all(lo <= len(g) <= hi for g in groups) and sorted(i for g in groups for i in g) == list(range(len(values)))
    assert solve.partition_sse(values, sizes) == pytest.approx(brute, abs=1e-9)


def test_brute_force_is_not_restricted_to_contiguous_groups() -> None:
    # the oracle searches every set partition, whatever the order: here the optimum pairs indices 0+2 and 1+3
    sse, groups = solve.brute_force_partition([0.1, 0.9, 0.1, 0.9], 2, 2, 2)
    assert sse == pytest.approx(0.0)
    assert sorted(sorted(g) for g in groups) == [[0, 2], [1, 3]]


def test_impossible_sizes_raise() -> None:
    with pytest.raises(ValueError, match="cannot split"):
        solve.contiguous_partition([0.1] * 10, 2, 6, 8)
    with pytest.raises(ValueError, match="cannot split"):
        solve.brute_force_partition([0.1] * 5, 2, 3, 3)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=60), st.integers(1, 8), st.integers(1, 8), st.integers(0, 6))
def test_dp_sizes_in_bounds_and_never_worse_than_equal_chunks(values: list[float], k: int, lo: int, extra: int) -> None:
    hi = lo + extra
    values = sorted(values)
    n = len(values)
    if not feasible(n, k, lo, hi):
        with pytest.raises(ValueError):
            solve.contiguous_partition(values, k, lo, hi)
        return
    sizes = solve.contiguous_partition(values, k, lo, hi)
    assert sum(sizes) == n and all(lo <= s <= hi for s in sizes)
    chunks = solve.equal_chunks(n, k)
    if all(lo <= s <= hi for s in chunks):
        assert solve.partition_sse(values, sizes) <= solve.partition_sse(values, chunks) + 1e-9


def test_dp_is_deterministic_on_ties() -> None:
    values = [0.5] * 12
    assert solve.contiguous_partition(values, 3, 3, 6) == solve.contiguous_partition(list(values), 3, 3, 6)


def test_assignment_is_exact() -> None:
    rng = random.Random(7)
    for _ in range(60):
        rows = rng.randint(1, 5)
        cols = rng.randint(rows, 6)
        cost = [[rng.randint(0, 9) for _ in range(cols)] for _ in range(rows)]
        got = naming.assign(cost)
        assert len(set(got)) == rows
        best = min(sum(cost[r][c] for r, c in enumerate(p)) for p in itertools.permutations(range(cols), rows))
        assert sum(cost[r][c] for r, c in enumerate(got)) == best


def test_mixed_layout_balances_means_and_keeps_sizes() -> None:
    rng = random.Random(3)
    values = sorted(rng.random() for _ in range(24))
    sizes = [6, 6, 6, 6]
    group = solve.mixed_layout(values, sizes)
    assert [group.count(g) for g in range(4)] == sizes
    means = [math.fsum(v for v, g in zip(values, group, strict=True) if g == h) / 6 for h in range(4)]
    contiguous = [math.fsum(values[i * 6:(i + 1) * 6]) / 6 for i in range(4)]
    assert max(means) - min(means) < 0.05
    assert max(means) - min(means) < (max(contiguous) - min(contiguous)) / 10


def test_serpentine_deals_back_and_forth() -> None:
    assert solve.serpentine(list(range(8)), [2, 3, 3]) == [0, 1, 2, 2, 1, 0, 1, 2]
