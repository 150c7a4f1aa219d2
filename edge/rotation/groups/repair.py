"""Teacher constraints after the DP: a bounded local repair, then feasibility-keeping improvement.

The DP gives the exact optimum without constraints. Pins and keep-apart pairs break the contiguity that makes
the DP exact (two students kept apart may both belong in the middle of the sorted order), so they are not
put into the DP; instead:

1. pinned students are put in their group (hard);
2. the students in keep-apart pairs are re-placed by a depth-first search that tries each one's current
   group first, then the others by least cost, never exceeding max_size, never putting partners together,
   and only accepting a leaf where the remaining free students can still fill every group to min_size
   (bounded by NODE_LIMIT; exhausting it is an error, never a violated constraint);
3. group sizes are repaired by moving free students (a move always exists once 2. holds);
4. moves and swaps that keep every constraint and lower the objective are applied until none does.

Every accepted state keeps all constraints, so a returned layout always satisfies them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence

from edge.exc import GroupingError

NODE_LIMIT = 200_000
EPS = 1e-12


class Layout:
    """Student → group index with per-group sizes and score sums; `sign` +1 minimises the within-group sum of
    squares (homogeneous), −1 maximises it (mixed: balanced means)."""

    def __init__(self, k: int, group: Mapping[str, int], scores: Mapping[str, float], sign: float = 1.0) -> None:
        self.k = k
        self.sign = sign
        self.scores = dict(scores)  # only the students placed by score
        self.group: dict[str, int] = {}
        self.size = [0] * k
        self.cnt = [0] * k
        self.s1 = [0.0] * k
        self.s2 = [0.0] * k
        for s, g in sorted(group.items()):
            self.add(s, g)

    def add(self, s: str, g: int) -> None:
        self.group[s] = g
        self.size[g] += 1
        p = self.scores.get(s)
        if p is not None:
            self.cnt[g] += 1
            self.s1[g] += p
            self.s2[g] += p * p

    def _remove(self, s: str) -> int:
        g = self.group.pop(s)
        self.size[g] -= 1
        p = self.scores.get(s)
        if p is not None:
            self.cnt[g] -= 1
            self.s1[g] -= p
            self.s2[g] -= p * p
        return g

    def move(self, s: str, g: int) -> None:
        self._remove(s)
        self.add(s, g)

    def members(self, g: int) -> list[str]:
        return sorted(s for s, h in self.group.items() if h == g)

    @staticmethod
    def _wss(s1: float, s2: float, c: int) -> float:
        return max(0.0, s2 - s1 * s1 / c) if c else 0.0

    def wss(self) -> float:
        """Within-group sum of squared deviations over the students placed by score."""
        return sum(self._wss(self.s1[g], self.s2[g], self.cnt[g]) for g in range(self.k))

    def move_delta(self, s: str, h: int) -> float:
        """Objective change of moving s to group h."""
        g = self.group[s]
        p = self.scores.get(s)
        if p is None or g == h:
            return 0.0
        before = self._wss(self.s1[g], self.s2[g], self.cnt[g]) + self._wss(self.s1[h], self.s2[h], self.cnt[h])
        after = (self._wss(self.s1[g] - p, self.s2[g] - p * p, self.cnt[g] - 1)
                 + self._wss(self.s1[h] + p, self.s2[h] + p * p, self.cnt[h] + 1))
        return self.sign * (after - before)

    def swap_delta(self, a: str, b: str) -> float:
        """Objective change of swapping a and b (in different groups)."""
        ga, gb = self.group[a], self.group[b]
        pa, pb = self.scores.get(a), self.scores.get(b)
        if ga == gb:
            return 0.0
        s1a, s2a, ca = self.s1[ga], self.s2[ga], self.cnt[ga]
        s1b, s2b, cb = self.s1[gb], self.s2[gb], self.cnt[gb]
        before = self._wss(s1a, s2a, ca) + self._wss(s1b, s2b, cb)
        if pa is not None:
            s1a, s2a, ca, s1b, s2b, cb = s1a - pa, s2a - pa * pa, ca - 1, s1b + pa, s2b + pa * pa, cb + 1
        if pb is not None:
            s1b, s2b, cb, s1a, s2a, ca = s1b - pb, s2b - pb * pb, cb - 1, s1a + pb, s2a + pb * pb, ca + 1
        return self.sign * (self._wss(s1a, s2a, ca) + self._wss(s1b, s2b, cb) - before)


def partner_map(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, b in pairs:
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)
    return out


def violations(layout: Layout, lo: int, hi: int, pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Human-readable list of broken size bounds and keep-apart pairs (empty when the layout is feasible)."""
    out = [f"group {g} has {n} students" for g, n in enumerate(layout.size) if not lo <= n <= hi]
    out += [f"{a} and {b} are together" for a, b in pairs if layout.group.get(a) == layout.group.get(b)]
    return out


def satisfy(layout: Layout, lo: int, hi: int, pinned: Mapping[str, int], pairs: Sequence[tuple[str, str]],
            anchored: frozenset[str] = frozenset(), node_limit: int = NODE_LIMIT) -> int:
    """Make `layout` meet pins, keep-apart pairs and sizes [lo, hi] in place; returns how many moves it made.
    Raises GroupingError when the constraints cannot be met (naming them)."""
    moves = 0
    for s, g in sorted(pinned.items()):
        if layout.group[s] != g:
            layout.move(s, g)
            moves += 1
    pin_count = [0] * layout.k
    for g in pinned.values():
        pin_count[g] += 1
    for c in pin_count:
        if c > hi:
            raise GroupingError(f"{c} students are pinned to one group, more than max_size {hi}")
    partners = partner_map(pairs)
    for a, b in pairs:
        if a in pinned and b in pinned and pinned[a] == pinned[b]:
            raise GroupingError(f"{a} and {b} are pinned to the same group but must be kept apart")
    constrained = sorted((s for s in partners if s not in pinned), key=lambda s: (-len(partners[s]), s))
    fixed = set(pinned) | set(constrained)
    free = [s for s in sorted(layout.group) if s not in fixed]
    if constrained or pinned:
        moves += _place_constrained(layout, lo, hi, pinned, constrained, partners, len(free), node_limit)
    moves += _repair_sizes(layout, lo, hi, free, anchored)
    return moves


def _place_constrained(layout: Layout, lo: int, hi: int, pinned: Mapping[str, int], order: Sequence[str],
                       partners: Mapping[str, set[str]], n_free: int, node_limit: int) -> int:
    """Depth-first search for groups of the keep-apart students (see the module docstring)."""
    k = layout.k
    count = [0] * k
    where: dict[str, int] = {}
    for s, g in pinned.items():
        count[g] += 1
        where[s] = g
    prefs = {s: _preferences(layout, s) for s in order}
    nodes = 0

    def deficit() -> int:
        return sum(max(0, lo - c) for c in count)

    def search(i: int) -> bool:
        nonlocal nodes
        nodes += 1
        if nodes > node_limit:
            raise GroupingError(f"could not find groups keeping every keep-apart pair apart within sizes "
                                f"{lo}..{hi} (searched {node_limit} placements); remove a pair or loosen the sizes")
        if deficit() > n_free + len(order) - i:
            return False
        if i == len(order):
            return True
        s = order[i]
        for g in prefs[s]:
            if count[g] >= hi or any(where.get(p) == g for p in partners[s]):
                continue
            count[g] += 1
            where[s] = g
            if search(i + 1):
                return True
            count[g] -= 1
            del where[s]
        return False

    if not search(0):
        raise GroupingError(f"no grouping keeps every keep-apart pair apart with pins and sizes {lo}..{hi}")
    moves = 0
    for s in order:
        if layout.group[s] != where[s]:
            layout.move(s, where[s])
            moves += 1
    return moves


def _preferences(layout: Layout, s: str) -> list[int]:
    """s's current group first, then the others by objective change, then index."""
    home = layout.group[s]
    others = sorted((layout.move_delta(s, h), h) for h in range(layout.k) if h != home)
    return [home, *(h for _, h in others)]


def _repair_sizes(layout: Layout, lo: int, hi: int, free: Sequence[str], anchored: frozenset[str]) -> int:
    """Move free students (no pin, no keep-apart partner) until every group is within [lo, hi]; students
    anchored to a group (thin, margin-kept) move last."""
    moves = 0
    while True:
        over = [g for g in range(layout.k) if layout.size[g] > hi]
        under = [g for g in range(layout.k) if layout.size[g] < lo]
        if not over and not under:
            return moves
        best: tuple[bool, bool, float, str, int] | None = None
        if over:
            g = over[0]
            for s in free:
                if layout.group[s] != g:
                    continue
                for h in range(layout.k):
                    if layout.size[h] < hi and h != g:
                        key = (s in anchored, layout.size[h] >= lo, layout.move_delta(s, h), s, h)
                        if best is None or key < best:
                            best = key
        else:
            g = under[0]
            for s in free:
                h = layout.group[s]
                if h != g and layout.size[h] > lo:
                    key = (s in anchored, False, layout.move_delta(s, g), s, g)
                    if best is None or key < best:
                        best = key
        if best is None:  # cannot happen after _place_constrained's leaf check; never return a broken layout
            raise GroupingError(f"cannot bring every group within sizes {lo}..{hi} with these pins")
        layout.move(best[3], best[4])
        moves += 1


def improve(layout: Layout, lo: int, hi: int, movable: Sequence[str], pairs: Sequence[tuple[str, str]],
            max_passes: int = 50) -> int:
    """Apply the best objective-lowering move or swap of each movable (scored) student that keeps sizes within
    [lo, hi] and keep-apart pairs apart, pass after pass until none helps (at most max_passes).

    A swap of x (group g) with y (group h), d = y − x, changes Σ Sᵍ²/cᵍ by φ(d) = A·d² + B·d, convex in d
    (A = 1/c_g + 1/c_h, B = 2(μ_g − μ_h)). Homogeneous wants φ large: the best partner in h is its lowest or
    highest allowed score; mixed wants φ small: the allowed scores nearest x − B/2A. So each student looks at
    O(1) partners per group (after skipping forbidden ones): O(n·G·log n) per pass, not O(n²)."""
    partners = partner_map(pairs)
    mov = sorted(s for s in movable if s in layout.scores)
    sorted_by_group: list[list[tuple[float, str]]] = [[] for _ in range(layout.k)]
    for s in mov:
        sorted_by_group[layout.group[s]].append((layout.scores[s], s))
    for m in sorted_by_group:
        m.sort()
    changes = 0

    def clear(s: str, h: int, leaving: str | None = None) -> bool:
        return not any(layout.group.get(p) == h and p != leaving for p in partners.get(s, ()))

    def allowed(s: str, g: int, t: str, h: int) -> bool:
        return clear(s, h, t) and clear(t, g, s)

    def partners_in(s: str, g: int, h: int) -> list[str]:
        """s's best swap candidates in group h (see the docstring)."""
        cand = sorted_by_group[h]
        if not cand:
            return []
        found: list[str] = []
        if layout.sign > 0:
            scans: list[Iterable[int]] = [range(len(cand)), range(len(cand) - 1, -1, -1)]
        else:
            c_g, c_h = layout.cnt[g], layout.cnt[h]
            coef = 1 / c_g + 1 / c_h
            lin = 2 * (layout.s1[g] / c_g - layout.s1[h] / c_h)
            at = bisect.bisect_left(cand, (layout.scores[s] - lin / (2 * coef), ""))
            scans = [range(at - 1, -1, -1), range(at, len(cand))]
        for scan in scans:
            for j in scan:
                t = cand[j][1]
                if allowed(s, g, t, h):
                    found.append(t)
                    break
        return found

    for _ in range(max_passes):
        improved = False
        for s in mov:
            g = layout.group[s]
            best: tuple[float, str, int] = (-EPS, "", -1)
            for h in range(layout.k):
                if h == g:
                    continue
                if layout.size[g] > lo and layout.size[h] < hi and clear(s, h):
                    d = layout.move_delta(s, h)
                    if d < best[0]:
                        best = (d, "", h)
                for t in partners_in(s, g, h):
                    d = layout.swap_delta(s, t)
                    if d < best[0]:
                        best = (d, t, h)
            if best[2] < 0:
                continue
            _, t, h = best
            sorted_by_group[g].remove((layout.scores[s], s))
            bisect.insort(sorted_by_group[h], (layout.scores[s], s))
            if t:
                sorted_by_group[h].remove((layout.scores[t], t))
                bisect.insort(sorted_by_group[g], (layout.scores[t], t))
                layout.move(t, g)
            layout.move(s, h)
            changes += 1
            improved = True
        if not improved:
            break
    return changes
