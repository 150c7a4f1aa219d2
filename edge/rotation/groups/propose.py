"""The regrouping proposal (pure): who sits together next, from P(known) and evidence counts of a focus skill.

Steps: validate → split thin / scored → exact DP (homogeneous) or balanced layout (mixed) over the scored
students → names by overlap with the current groups → margin keeps → pins and thin students placed →
constraint repair (edge.rotation.groups.repair) → plan order with the lowest-mean group at the teacher station.
Identical input gives identical groups and names: every order and tie is settled by sorted ids.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

from edge.exc import GroupingError
from edge.limits import SKILL_MAX
from edge.rotation.groups import naming, repair, solve
from edge.rotation.groups.model import (
    MAX_GROUPS,
    MAX_SIZE,
    MAX_STUDENTS,
    Constraints,
    Move,
    Options,
    Proposal,
    ProposedGroup,
    StudentScore,
    check_name,
    group_stats,
)
from edge.rotation.plan import Group, Plan


def plan_membership(plan: Plan | None) -> dict[str, str]:
    """student → group name in `plan` (a student listed twice keeps the first group)."""
    out: dict[str, str] = {}
    for g in plan.groups if plan else ():
        for s in g.members:
            out.setdefault(s, g.name)
    return out


def propose(skill: str, scores: Mapping[str, StudentScore], *, students: Iterable[str] | None = None,
            plan: Plan | None = None, current: Mapping[str, str] | None = None, options: Options | None = None,
            constraints: Constraints | None = None) -> Proposal:
    """Group the class for `skill`.

    `scores`: P(known) and opportunities per student; `students`: the class (default: the scored students;
    a student without a score is thin); `plan`: supplies G (its station count), names and stations;
    `current`: student → current group name (default: the plan's members). Raises GroupingError on bad input.
    """
    options = options or Options()
    constraints = constraints or Constraints()
    check_name(skill, "skill", SKILL_MAX)
    options.check()
    constraints.check()
    roster = _roster(students if students is not None else scores)
    current = dict(current) if current is not None else plan_membership(plan)
    for s, g in current.items():
        check_name(s, "student")
        check_name(g, f"current group of {s!r}")
    known = set(roster)
    table = {s: scores.get(s, StudentScore(None, 0)) for s in roster}
    for what, given in (("absent", constraints.absent), ("pinned", constraints.pins)):
        unknown = sorted(s for s in given if s not in known)
        if unknown:
            raise GroupingError(f"{what} student {unknown[0]!r} is not in the class")
    for a, b in constraints.apart:
        for s in (a, b):
            if s not in known:
                raise GroupingError(f"keep-apart student {s!r} is not in the class")
    both = sorted(set(constraints.pins) & constraints.absent)
    if both:
        raise GroupingError(f"student {both[0]!r} is pinned but absent")
    present = [s for s in roster if s not in constraints.absent]
    n = len(present)
    k = options.groups if options.groups is not None else (len(plan.stations) if plan else None)
    if k is None:
        raise GroupingError("give the number of groups (there is no plan to take the station count from)")
    if k > MAX_GROUPS:
        raise GroupingError(f"groups must be at most {MAX_GROUPS}, the plan has {k} stations")
    lo, hi = options.min_size, options.max_size
    if n == 0:
        raise GroupingError("no students to group (the class is empty or everyone is absent)")
    if k > n:
        raise GroupingError(f"{k} groups is more than the {n} students present")
    if not k * lo <= n <= k * hi:
        raise GroupingError(f"{n} students cannot make {k} groups of {lo} to {hi} "
                            f"(that needs between {k * lo} and {k * hi} students)")
    pin_targets = sorted(set(constraints.pins.values()))
    if len(pin_targets) > k:
        raise GroupingError(f"pins name {len(pin_targets)} groups but there are only {k}")
    pairs = sorted({tuple(sorted(p)) for p in constraints.apart
                    if p[0] not in constraints.absent and p[1] not in constraints.absent})
    apart = [(a, b) for a, b in pairs]

    thin = [s for s in present if table[s].n < options.min_evidence or table[s].p_known is None]
    thin_set = set(thin)
    scored = [s for s in present if s not in thin_set]
    p = {s: float(score) for s in scored if (score := table[s].p_known) is not None}

    # 1. the layout of the scored students, blocks in ascending mean order
    blocks = _blocks(scored, p, k, max(0, lo - len(thin)), hi, options)
    # 2. names
    base = [g.name for g in plan.groups] if plan else sorted(set(current.values()))
    names = naming.candidate_names(base, pin_targets, k)
    block_names = naming.match_names(blocks, names, current, frozenset(pin_targets), frozenset(base))
    index = {name: i for i, name in enumerate(block_names)}
    group = {s: i for i, block in enumerate(blocks) for s in block}
    layout = repair.Layout(k, group, p, 1.0 if options.mode == "homogeneous" else -1.0)
    # 3. stability: boundary students stay where they are
    kept: list[str] = []
    if options.mode == "homogeneous" and options.margin > 0:
        kept = _keep_boundary(layout, blocks, p, current, index, options.margin, set(constraints.pins),
                              max(0, lo - len(thin)), hi)
    # 4. pins, then thin students: their current group while it has room, else the smallest group
    pinned = {student: index[name] for student, name in constraints.pins.items()}
    for student, target in sorted(pinned.items()):
        if student in thin_set:
            layout.add(student, target)
        elif layout.group[student] != target:
            layout.move(student, target)
    later = []
    for student in sorted(thin_set - set(pinned)):
        home = index.get(current.get(student, ""), -1)
        if home >= 0 and layout.size[home] < hi:
            layout.add(student, home)
        else:
            later.append(student)
    for student in later:
        layout.add(student, min(range(k), key=lambda h: (layout.size[h], block_names[h])))
    # 5. constraints and sizes, then polish what the repair moved
    anchored = frozenset(thin) | frozenset(kept)
    moved_by_repair = repair.satisfy(layout, lo, hi, pinned, apart, anchored)
    if moved_by_repair or pinned or apart:
        movable = [s for s in scored if s not in pinned and s not in anchored]
        repair.improve(layout, lo, hi, movable, apart)
    problems = repair.violations(layout, lo, hi, apart)
    if problems:  # never hand out a grouping that breaks a constraint
        raise GroupingError(f"internal: proposal breaks constraints: {problems[0]}")
    return _finish(skill, options, layout, block_names, table, thin, kept, current, constraints, plan, p)


def _roster(students: Iterable[str]) -> list[str]:
    out = sorted(set(students))
    if len(out) > MAX_STUDENTS:
        raise GroupingError(f"at most {MAX_STUDENTS} students, got {len(out)}")
    for s in out:
        check_name(s, "student")
    return out


def _blocks(scored: Sequence[str], p: Mapping[str, float], k: int, lo: int, hi: int,
            options: Options) -> list[list[str]]:
    """k lists of scored students (possibly empty when thin students fill the seats) in ascending mean order."""
    order = sorted(scored, key=lambda s: (p[s], s))
    values = [p[s] for s in order]
    if not order:
        return [[] for _ in range(k)]
    if options.mode == "homogeneous":
        sizes = solve.contiguous_partition(values, k, lo, hi)
        out, start = [], 0
        for size in sizes:
            out.append(order[start:start + size])
            start += size
        return out
    sizes = solve.balanced_sizes(len(order), k, lo, hi)
    assignment = solve.mixed_layout(values, sizes)
    groups: list[list[str]] = [[] for _ in range(k)]
    for s, g in zip(order, assignment, strict=True):
        groups[g].append(s)

    def mean(block: list[str]) -> float:
        return math.fsum(p[s] for s in block) / len(block) if block else math.inf

    return sorted(groups, key=lambda b: (mean(b), b))


def _keep_boundary(layout: repair.Layout, blocks: Sequence[Sequence[str]], p: Mapping[str, float],
                   current: Mapping[str, str], index: Mapping[str, int], margin: float, pinned: set[str],
                   lo: int, hi: int) -> list[str]:
    """Students within `margin` of the boundary between their proposed block and the adjacent block named
    as their current group go back there: a move when sizes allow, else a swap with a student crossing the
    same boundary the other way. Boundary = midpoint between the two blocks' nearest scores (from the DP)."""
    pos = {i: b for b, block in enumerate(blocks) for i in block}
    bounds = {}
    for b in range(len(blocks) - 1):
        if blocks[b] and blocks[b + 1]:
            bounds[b] = (p[blocks[b][-1]] + p[blocks[b + 1][0]]) / 2
    cands: list[tuple[float, str, int, int, int]] = []  # (distance, student, boundary, from, to)
    for s, b in pos.items():
        home = index.get(current.get(s, ""), -1)
        if s in pinned or home < 0 or abs(home - b) != 1:
            continue
        edge = min(home, b)
        if edge in bounds and abs(p[s] - bounds[edge]) <= margin:
            cands.append((abs(p[s] - bounds[edge]), s, edge, b, home))
    cands.sort()
    kept: list[str] = []
    done: set[str] = set()
    for _, s, edge, src, dst in cands:
        if s in done:
            continue
        if layout.size[src] > lo and layout.size[dst] < hi:
            layout.move(s, dst)
            kept.append(s)
            done.add(s)
            continue
        other = next((c for c in cands if c[1] not in done and c[1] != s and c[2] == edge and c[3] == dst), None)
        if other is not None:
            layout.move(s, dst)
            layout.move(other[1], src)
            kept += [s, other[1]]
            done |= {s, other[1]}
    return sorted(kept)


def _finish(skill: str, options: Options, layout: repair.Layout, block_names: Sequence[str],
            table: Mapping[str, StudentScore], thin: Sequence[str], kept: Sequence[str], current: Mapping[str, str],
            constraints: Constraints, plan: Plan | None, p: Mapping[str, float]) -> Proposal:
    placed = frozenset(p)
    members = {block_names[g]: layout.members(g) for g in range(layout.k)}
    groups = [(name, members[name]) for name in _listing_order(block_names, plan)]
    ordered = order_groups(groups, table, placed, plan)
    where = {s: g.name for g in ordered for s in g.students}
    moved = tuple(Move(s, current[s], where[s]) for s in sorted(where) if s in current and current[s] != where[s])
    sse = math.fsum(group_stats(g.students, table, placed)[1] for g in ordered)
    teacher = _teacher_group(ordered, plan)
    return Proposal(skill=skill, mode=options.mode, groups=tuple(ordered), thin=tuple(sorted(thin)),
                    kept=tuple(kept), moved=moved, sse=sse, absent=tuple(sorted(constraints.absent)),
                    scores=dict(table), current=dict(current), teacher_group=teacher)


def _listing_order(names: Sequence[str], plan: Plan | None) -> list[str]:
    """Plan names in plan order first, then the others in sorted order (never by score)."""
    plan_names = [g.name for g in plan.groups] if plan else []
    return [n for n in plan_names if n in names] + sorted(n for n in names if n not in plan_names)


def order_groups(groups: Sequence[tuple[str, Sequence[str]]], scores: Mapping[str, StudentScore],
                 placed: frozenset[str], plan: Plan | None) -> list[ProposedGroup]:
    """ProposedGroups in plan order: the listing turned so the lowest mean starts at the teacher station."""
    stats = {name: group_stats(list(members), scores, placed)[0] for name, members in groups}
    by_name = {name: tuple(sorted(members)) for name, members in groups}
    names = naming.rotate_for_teacher([name for name, _ in groups], stats, plan)
    stations = naming.first_stations(len(names), plan)
    return [ProposedGroup(name, by_name[name], stats[name], st) for name, st in zip(names, stations, strict=True)]


def _teacher_group(groups: Sequence[ProposedGroup], plan: Plan | None) -> str | None:
    ts = naming.teacher_index(plan)
    if ts is None or plan is None:
        return None
    return next((g.name for g in groups if g.first_station == plan.stations[ts].name), None)


def revise(proposal: Proposal, groups: Sequence[tuple[str, Sequence[str]]], plan: Plan | None = None) -> Proposal:
    """The teacher's edited version of `proposal` (students dragged between groups, groups renamed): every
    present student exactly once; means, sse, moves and plan order recomputed. Sizes are the teacher's call
    (1..MAX_SIZE), constraints are not re-imposed."""
    if not 1 <= len(groups) <= MAX_GROUPS:
        raise GroupingError(f"1 to {MAX_GROUPS} groups, got {len(groups)}")
    expected = set(proposal.group_of())
    seen: dict[str, str] = {}
    names: set[str] = set()
    for name, members in groups:
        check_name(name, "group name")
        if name in names:
            raise GroupingError(f"duplicate group name {name!r}")
        names.add(name)
        if not 1 <= len(members) <= MAX_SIZE:
            raise GroupingError(f"group {name!r} must have 1 to {MAX_SIZE} students, has {len(members)}")
        for s in members:
            if s not in expected:
                raise GroupingError(f"student {s!r} in group {name!r} is not in the proposal")
            if s in seen:
                raise GroupingError(f"student {s!r} is in both {seen[s]!r} and {name!r}")
            seen[s] = name
    missing = sorted(expected - set(seen))
    if missing:
        raise GroupingError(f"student {missing[0]!r} is in no group")
    placed = frozenset(s for s in expected if s not in set(proposal.thin) and proposal.scores[s].p_known is not None)
    ordered = order_groups(groups, proposal.scores, placed, plan)
    where = {s: g.name for g in ordered for s in g.students}
    moved = tuple(Move(s, proposal.current[s], where[s]) for s in sorted(where)
                  if s in proposal.current and proposal.current[s] != where[s])
    kept = tuple(s for s in proposal.kept if where[s] == proposal.group_of()[s])
    sse = math.fsum(group_stats(g.students, proposal.scores, placed)[1] for g in ordered)
    return dataclasses.replace(proposal, groups=tuple(ordered), moved=moved, kept=kept, sse=sse,
                               teacher_group=_teacher_group(ordered, plan))


def changes(proposed: Proposal, applied: Proposal) -> tuple[Move, ...]:
    """The teacher's changes: students whose group in `applied` differs from the proposal (from → to)."""
    before, after = proposed.group_of(), applied.group_of()
    return tuple(Move(s, before[s], after[s]) for s in sorted(after) if before.get(s) != after[s])


def apply_to_plan(plan: Plan, proposal: Proposal) -> Plan:
    """A new plan with the proposal's groups (members sorted), turned so the lowest-mean group is at the
    teacher station in round 1; stations, timings and name unchanged."""
    placed = frozenset(s for s in proposal.group_of()
                       if s not in set(proposal.thin) and proposal.scores[s].p_known is not None)
    ordered = order_groups([(g.name, g.students) for g in proposal.groups], proposal.scores, placed, plan)
    return dataclasses.replace(plan, groups=tuple(Group(g.name, g.students) for g in ordered))
