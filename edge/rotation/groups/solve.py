"""Partition solvers on plain score lists: the exact size-bounded 1-D k-means DP, its brute-force oracle, the
equal-chunks greedy peer, and the mixed-ability (balanced means) layout.

Why the DP is exact: swapping x in group A with y < x in group B changes the sum of squared deviations by
−2d(μB − μA) − d²(1/|A| + 1/|B|) with d = x − y, so whenever μA ≤ μB that swap strictly lowers it. An
optimum therefore has no such crossing: its groups are contiguous runs of the sorted scores, and the swap
keeps sizes, so this holds under size bounds too. The DP over (groups used, students covered) is then exact.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from functools import cache

INF = math.inf


def block_sse(values: Sequence[float]) -> float:
    """Sum of squared deviations from the mean (0 for an empty block)."""
    if not values:
        return 0.0
    mean = math.fsum(values) / len(values)
    return math.fsum((v - mean) ** 2 for v in values)


def partition_sse(values: Sequence[float], sizes: Sequence[int]) -> float:
    """Total SSE of contiguous blocks of `sizes` over `values` (in the given order)."""
    total, start = 0.0, 0
    for size in sizes:
        total += block_sse(values[start:start + size])
        start += size
    return total


def contiguous_partition(values: Sequence[float], k: int, lo: int, hi: int) -> list[int]:
    """Block sizes (in order) of the k contiguous blocks of sorted `values` with sizes in [lo, hi] and the least
    total SSE; O(k·n·(hi−lo+1)). Ties go to the first optimum found (smallest last block), so equal input gives
    equal output. Raises ValueError when no such split exists."""
    n = len(values)
    if k < 1 or lo < 0 or hi < lo or not k * lo <= n <= k * hi:
        raise ValueError(f"cannot split {n} scores into {k} blocks of {lo}..{hi}")
    shift = math.fsum(values) / n if n else 0.0  # centred values: no cancellation in S2 − S1²/len
    s1 = [0.0] * (n + 1)
    s2 = [0.0] * (n + 1)
    for i, v in enumerate(values):
        c = v - shift
        s1[i + 1] = s1[i] + c
        s2[i + 1] = s2[i] + c * c
    prev = [INF] * (n + 1)
    prev[0] = 0.0
    choice: list[list[int]] = []
    for g in range(1, k + 1):
        cur = [INF] * (n + 1)
        arg = [-1] * (n + 1)
        first, last = g * lo, min(n, g * hi)
        for i in range(first, last + 1):
            best, best_size = INF, -1
            for size in range(lo, min(hi, i) + 1):
                j = i - size
                base = prev[j]
                if base == INF:
                    continue
                if size:
                    d1 = s1[i] - s1[j]
                    cost = (s2[i] - s2[j]) - d1 * d1 / size
                    if cost < 0.0:
                        cost = 0.0
                else:
                    cost = 0.0
                if base + cost < best:
                    best, best_size = base + cost, size
            cur[i], arg[i] = best, best_size
        choice.append(arg)
        prev = cur
    sizes: list[int] = []
    i = n
    for g in range(k - 1, -1, -1):
        size = choice[g][i]
        sizes.append(size)
        i -= size
    sizes.reverse()
    return sizes


def brute_force_partition(values: Sequence[float], k: int, lo: int, hi: int) -> tuple[float, list[list[int]]]:
    """The exact optimum over ALL set partitions (not only contiguous ones) into k groups of lo..hi, by a DP
    over subsets (the group holding the lowest remaining index is chosen next). Exponential: the test and
    benchmark oracle for n ≤ 12 or so. Returns (sse, groups of indices)."""
    n = len(values)
    if n > 16:
        raise ValueError("brute force is for n <= 16")
    full = (1 << n) - 1
    cnt = [0] * (full + 1)
    cost = [0.0] * (full + 1)
    for mask in range(1, full + 1):
        cnt[mask] = cnt[mask & (mask - 1)] + 1
        cost[mask] = block_sse([values[i] for i in range(n) if mask >> i & 1])

    @cache
    def best(mask: int, groups: int) -> tuple[float, int]:
        if groups == 0:
            return (0.0, 0) if mask == 0 else (INF, 0)
        if not groups * lo <= cnt[mask] <= groups * hi:
            return INF, 0
        low = mask & -mask
        rest = mask ^ low
        top, top_group = INF, 0
        sub = rest
        while True:
            grp = sub | low
            if lo <= cnt[grp] <= hi:
                tail, _ = best(mask ^ grp, groups - 1)
                if cost[grp] + tail < top:
                    top, top_group = cost[grp] + tail, grp
            if sub == 0:
                break
            sub = (sub - 1) & rest
        return top, top_group

    total, _ = best(full, k)
    if total == INF:
        raise ValueError(f"cannot split {n} scores into {k} groups of {lo}..{hi}")
    groups: list[list[int]] = []
    mask, left = full, k
    while left:
        _, grp = best(mask, left)
        groups.append([i for i in range(n) if grp >> i & 1])
        mask ^= grp
        left -= 1
    best.cache_clear()
    return total, groups


def equal_chunks(n: int, k: int) -> list[int]:
    """Sizes of the obvious greedy split: k sorted chunks as equal as possible (the larger ones first)."""
    q, r = divmod(n, k)
    return [q + 1] * r + [q] * (k - r)


def balanced_sizes(n: int, k: int, lo: int, hi: int) -> list[int]:
    """k sizes as equal as possible, each clamped into [lo, hi] where the total allows (mixed mode's targets)."""
    sizes = equal_chunks(n, k)
    return [min(hi, max(lo, s)) for s in sizes] if k * lo <= n <= k * hi else sizes


def serpentine(order: Sequence[int], sizes: Sequence[int]) -> list[int]:
    """Deal `order` (indices, highest score first) to groups 0,1,…,k−1,k−1,…,0,… skipping full groups;
    returns the group of each dealt position."""
    k = len(sizes)
    room = list(sizes)
    out: list[int] = []
    forward, g = True, 0
    for _ in order:
        while room[g] == 0:
            g, forward = _step(g, forward, k)
        out.append(g)
        room[g] -= 1
        g, forward = _step(g, forward, k)
    return out


def _step(g: int, forward: bool, k: int) -> tuple[int, bool]:
    if k == 1:
        return 0, forward
    if forward:
        return (g + 1, True) if g + 1 < k else (g, False)
    return (g - 1, False) if g > 0 else (g, True)


def mixed_layout(values: Sequence[float], sizes: Sequence[int], max_passes: int = 100) -> list[int]:
    """Groups with balanced means: serpentine by score, then swaps that lower the spread of the group means
    (the between-group sum of squares Σ nᵍ(μᵍ − μ)²), sizes kept. Returns the group per value.

    Swapping x in group a with y in group b (d = y − x) changes Σ Sᵍ²/nᵍ by φ(d) = A·d² + B·d with
    A = 1/nₐ + 1/n_b and B = 2(μₐ − μ_b): convex, least at d* = −B/2A, so the best partner of x in b is the
    value nearest x + d* (a bisection), O(n·G·log n) per pass. Deterministic: ties keep the first found."""
    n, k = len(values), len(sizes)
    order = sorted(range(n), key=lambda i: (-values[i], i))
    dealt = serpentine(order, sizes)
    group = [0] * n
    for i, g in zip(order, dealt, strict=True):
        group[i] = g
    sums = [0.0] * k
    counts = [0] * k
    members: list[list[tuple[float, int]]] = [[] for _ in range(k)]
    for i, g in enumerate(group):
        sums[g] += values[i]
        counts[g] += 1
        members[g].append((values[i], i))
    for m in members:
        m.sort()
    for _ in range(max_passes):
        improved = False
        for a in range(n):
            ga, x = group[a], values[a]
            best, best_b = -1e-12, -1
            for gb in range(k):
                if gb == ga or not members[gb]:
                    continue
                coef = 1 / counts[ga] + 1 / counts[gb]
                lin = 2 * (sums[ga] / counts[ga] - sums[gb] / counts[gb])
                target = x - lin / (2 * coef)
                at = bisect.bisect_left(members[gb], (target, -1))
                for j in (at - 1, at):
                    if 0 <= j < len(members[gb]):
                        d = members[gb][j][0] - x
                        phi = coef * d * d + lin * d
                        if phi < best:
                            best, best_b = phi, members[gb][j][1]
            if best_b < 0:
                continue
            b = best_b
            gb, y = group[b], values[b]
            members[ga].remove((x, a))
            members[gb].remove((y, b))
            bisect.insort(members[ga], (y, b))
            bisect.insort(members[gb], (x, a))
            sums[ga] += y - x
            sums[gb] -= y - x
            group[a], group[b] = gb, ga
            improved = True
        if not improved:
            break
    return group
