"""Neutral group names and where groups start: names follow the students (largest overlap with the current
groups), never the rank; the lowest-mean group starts at the teacher station.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence

from edge.rotation.plan import Plan

# Colours, not ranks: a name never says "low" or "top". 40 = MAX_GROUPS.
PALETTE = (
    "Blue", "Green", "Orange", "Purple", "Red", "Teal", "Yellow", "Pink", "Brown", "Grey",
    "Indigo", "Lime", "Navy", "Olive", "Coral", "Gold", "Silver", "Violet", "Maroon", "Cyan",
    "Magenta", "Amber", "Mint", "Plum", "Rose", "Sky", "Sand", "Ruby", "Jade", "Ivory",
    "Peach", "Lilac", "Cream", "Rust", "Sage", "Slate", "Aqua", "Berry", "Copper", "Pearl",
)
_B = 1 << 32  # weight digits: pin-target ≫ overlap ≫ plan name ≫ tie-break (each sum < one digit above it)


def candidate_names(base: Sequence[str], pinned: Sequence[str], k: int) -> list[str]:
    """The names to choose k from: the plan's (or current) names, then colours until there are len(base) + k,
    then pin targets not among them. Pins naming shown groups leave the list, and so the names, unchanged."""
    out = list(dict.fromkeys(base))
    want = len(out) + k
    for name in PALETTE:
        if len(out) >= want:
            break
        if name not in out:
            out.append(name)
    return out + [name for name in dict.fromkeys(pinned) if name not in out]


def _digest16(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:2], "big")


def match_names(blocks: Sequence[Sequence[str]], names: Sequence[str], current: Mapping[str, str],
                pinned_names: frozenset[str], base_names: frozenset[str]) -> list[str]:
    """A distinct name per block maximising, in this order: pin targets used, students keeping their current
    group name, plan names used, then a stable tie-break. Exact (Hungarian method on integer weights)."""
    # tie-break: a stable pseudo-random number per (block, name), so equal overlaps are settled the same way
    # every time but never by rank; one hash per block and per name, combined
    name_hash = [_digest16(name.encode()) for name in names]
    weights = []
    for block in blocks:
        overlap = Counter(current.get(s) for s in block)
        block_hash = _digest16("\x00".join(sorted(block)).encode())
        weights.append([(name in pinned_names) * _B ** 3 + overlap[name] * _B ** 2 + (name in base_names) * _B
                        + (block_hash ^ h) for name, h in zip(names, name_hash, strict=True)])
    top = max((w for row in weights for w in row), default=0)
    cols = assign([[top - w for w in row] for row in weights])
    return [names[c] for c in cols]


def assign(cost: Sequence[Sequence[int]]) -> list[int]:
    """Minimum-cost assignment of every row to a distinct column (rows ≤ columns), O(rows²·columns)."""
    n = len(cost)
    if n == 0:
        return []
    m = len(cost[0])
    if m < n:
        raise ValueError("more rows than columns")
    inf = float("inf")
    u = [0] * (n + 1)
    v = [0] * (m + 1)
    p = [0] * (m + 1)
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv: list[float] = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0 = p[j0]
            delta: float = inf
            j1 = 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            d = int(delta)
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += d
                    v[j] -= d
                else:
                    minv[j] -= d
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    out = [-1] * n
    for j in range(1, m + 1):
        if p[j]:
            out[p[j] - 1] = j - 1
    return out


def teacher_index(plan: Plan | None) -> int | None:
    """Index of the plan's first teacher station (None without a plan or a teacher station)."""
    if plan is None:
        return None
    return next((i for i, s in enumerate(plan.stations) if s.kind == "teacher"), None)


def rotate_for_teacher(names: Sequence[str], means: Mapping[str, float | None], plan: Plan | None) -> list[str]:
    """`names` turned cyclically (so the rotation keeps its order) until the lowest-mean group sits where the
    teacher station is in round 1: group i is at station i mod n in round 1. With more stations than groups
    and the teacher station past the last group, the last position is the earliest it can reach it."""
    ts = teacher_index(plan)
    scored = [(m, name) for name in names if (m := means.get(name)) is not None]
    if ts is None or not scored or not names:
        return list(names)
    lowest = min(scored)[1]
    target = min(ts, len(names) - 1)
    shift = (target - list(names).index(lowest)) % len(names)
    return [names[(i - shift) % len(names)] for i in range(len(names))]


def first_stations(count: int, plan: Plan | None) -> list[str | None]:
    """The station of each group position in round 1."""
    if plan is None or not plan.stations:
        return [None] * count
    return [plan.stations[i % len(plan.stations)].name for i in range(count)]
