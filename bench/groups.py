"""Regrouping benchmark: the exact DP proposal against its peers measured in the same run.

Peers: the obvious greedy split (equal-size chunks of the sorted scores) on a class of 36, and the
brute-force optimum over all set partitions on classes of 12 (where it is feasible). Printed: time per
proposal (goal ≤ 5 ms for 36 students) and the SSE ratio (ours / peer; ≤ 1 is better, 1 = as good).

The issue's setting "36 students, G = 4, 3–6 per group" cannot be met (4 × 6 = 24 < 36), so the class of
36 runs twice: G = 4 with sizes 3–12, and G = 8 with sizes 3–6.
"""

from __future__ import annotations

import itertools
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.exc import GroupingError
from edge.rotation.groups import solve
from edge.rotation.groups.model import Constraints, Options, StudentScore
from edge.rotation.groups.propose import propose
from edge.rotation.plan import Group, Plan, Station

SEED = 20260314
CLASSES = 50
REPEAT = 40
GOAL_MS = 5.0


def make_class(rng: random.Random, n: int) -> dict[str, StudentScore]:
    """A class after some online work: a mixture of struggling, practising and mastered students."""
    scores = {}
    for i in range(n):
        a, b = rng.choice(((2, 8), (5, 5), (8, 2)))
        scores[f"s-{i:03d}"] = StudentScore(rng.betavariate(a, b), rng.randint(3, 20))
    return scores


def plan_for(k: int) -> Plan:
    kinds = ["online", "teacher"] + ["offline"] * (k - 2)
    return Plan(name="Bench", work_minutes=15, stations=tuple(Station(f"S{i}", kind) for i, kind in enumerate(kinds)),
                groups=tuple(Group(f"G{i}") for i in range(k)))


def best_ms(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    """Median wall time of `fn` in ms (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def greedy_sse(values: list[float], k: int) -> float:
    """The peer: equal-size chunks of the sorted scores, and their total SSE."""
    return solve.partition_sse(values, solve.equal_chunks(len(values), k))


def class_of_36(k: int, lo: int, hi: int) -> None:
    rng = random.Random(SEED + k)
    ratios, full_ms, dp_ms, greedy_ms = [], [], [], []
    plan = plan_for(k)
    options = Options(groups=k, min_size=lo, max_size=hi)
    for _ in range(CLASSES):
        scores = make_class(rng, 36)
        values = sorted(s.p_known or 0.0 for s in scores.values())
        proposal = propose("bench", scores, plan=plan, options=options)
        ratios.append(proposal.sse / greedy_sse(values, k))
        full_ms.append(best_ms(partial(propose, "bench", scores, plan=plan, options=options), 10))
        dp_ms.append(best_ms(partial(solve.contiguous_partition, values, k, lo, hi), 10))
        greedy_ms.append(best_ms(partial(greedy_sse, values, k), 10))
    full = statistics.median(full_ms)
    print(f"36 students, G={k}, sizes {lo}-{hi} ({CLASSES} seeded classes):")
    print(f"  propose() (checks, DP, names, plan order): median {full:.3f} ms, worst {max(full_ms):.3f} ms "
          f"(goal <= {GOAL_MS:.0f} ms: {'met' if max(full_ms) <= GOAL_MS else 'NOT met'})")
    print(f"  DP alone: {statistics.median(dp_ms):.3f} ms; greedy equal chunks: {statistics.median(greedy_ms):.3f} ms")
    print(f"  sse ratio ours/greedy: mean {statistics.mean(ratios):.3f}, best {min(ratios):.3f}, "
          f"worst {max(ratios):.3f} (lower is better)")


def class_of_12(k: int, lo: int, hi: int, classes: int = 12) -> None:
    rng = random.Random(SEED + 100 + k)
    ratios, ours_ms, brute_ms = [], [], []
    options = Options(groups=k, min_size=lo, max_size=hi, margin=0)
    for _ in range(classes):
        scores = make_class(rng, 12)
        values = [s.p_known or 0.0 for s in scores.values()]
        proposal = propose("bench", scores, options=options)
        t = time.perf_counter()
        brute, _ = solve.brute_force_partition(values, k, lo, hi)
        brute_ms.append((time.perf_counter() - t) * 1000)
        ratios.append(proposal.sse / brute if brute > 0 else 1.0)
        ours_ms.append(best_ms(partial(propose, "bench", scores, options=options), 10))
    ours, peer = statistics.median(ours_ms), statistics.median(brute_ms)
    print(f"12 students, G={k}, sizes {lo}-{hi} ({classes} seeded classes) vs brute force over all partitions:")
    print(f"  propose() median {ours:.3f} ms, brute force median {peer:.1f} ms ({peer / ours:.0f}x slower)")
    print(f"  sse ratio ours/brute force: min {min(ratios):.6f}, max {max(ratios):.6f} (1 = optimal)")


def exhaustive_constrained(values: list[float], k: int, lo: int, hi: int, pins: dict[int, int],
                           apart: list[tuple[int, int]]) -> float | None:
    """The least sse over every labelled grouping meeting sizes, pins and keep-apart pairs (None: none does)."""
    best: float | None = None
    for combo in itertools.product(range(k), repeat=len(values)):
        if any(combo[i] != g for i, g in pins.items()) or any(combo[a] == combo[b] for a, b in apart):
            continue
        if not all(lo <= combo.count(g) <= hi for g in range(k)):
            continue
        sse = sum(solve.block_sse([v for v, c in zip(values, combo, strict=True) if c == g]) for g in range(k))
        best = sse if best is None or sse < best else best
    return best


def constrained_small(classes: int = 60) -> None:
    """With pins and keep-apart pairs the DP + repair is not exact: how far from the constrained optimum?"""
    rng = random.Random(SEED + 200)
    ratios = []
    for _ in range(classes):
        n, k = rng.randint(6, 9), rng.randint(2, 3)
        lo, hi = rng.randint(1, n // k), rng.randint(-(-n // k), n)
        scores = make_class(rng, n)
        ids = sorted(scores)
        pin_idx = {i: rng.randint(0, k - 1) for i in rng.sample(range(n), rng.randint(0, 2))}
        apart = [(a, b) for a, b in (rng.sample(range(n), 2) for _ in range(rng.randint(1, 4)))]
        values = [scores[s].p_known or 0.0 for s in ids]
        # pins name groups P0.., which the exhaustive search labels in sorted order
        labels = {name: j for j, name in enumerate(sorted({f"P{g}" for g in pin_idx.values()}))}
        best = exhaustive_constrained(values, k, lo, hi, {i: labels[f"P{g}"] for i, g in pin_idx.items()}, apart)
        constraints = Constraints(pins={ids[i]: f"P{g}" for i, g in pin_idx.items()},
                                  apart=tuple((ids[a], ids[b]) for a, b in apart))
        try:
            p = propose("bench", scores, options=Options(groups=k, min_size=lo, max_size=hi, margin=0),
                        constraints=constraints)
        except GroupingError:
            if best is not None:
                print("  a feasible class was refused")
            continue
        if best is not None:
            ratios.append((p.sse + 1e-12) / (best + 1e-12))
    ratios.sort()
    exact = sum(r <= 1 + 1e-6 for r in ratios)
    print(f"pins + keep-apart, 6-9 students ({len(ratios)} feasible seeded classes) vs the exhaustive constrained "
          f"optimum:")
    print(f"  optimal in {exact}/{len(ratios)}; sse ratio median {statistics.median(ratios):.3f}, "
          f"90th percentile {ratios[int(0.9 * (len(ratios) - 1))]:.3f}, worst {ratios[-1]:.3f}")


def main() -> int:
    class_of_36(4, 3, 12)
    class_of_36(8, 3, 6)
    class_of_12(3, 3, 6)
    class_of_12(4, 2, 4)
    constrained_small()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
