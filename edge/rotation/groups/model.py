"""Regrouping vocabulary: scores, options, teacher constraints, the proposal and its JSON form, input limits.

Pure data (no I/O): the CLI, the web API and the history store all speak these types.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from edge.config import EdgeConfig
from edge.exc import GroupingError
from edge.limits import STUDENT_ID_MAX, name_problem

Mode = Literal["homogeneous", "mixed"]
MODES: tuple[Mode, ...] = ("homogeneous", "mixed")

# Every number and name that comes in is bounded, so a typo or a hostile request cannot make the solver
# (O(G·n·(max−min)) DP, O(G³) matching) or the page do unbounded work.
MAX_GROUPS = 40
MAX_SIZE = 40
MAX_STUDENTS = 500
MAX_NAME = STUDENT_ID_MAX  # students and groups (edge.limits)
MAX_EVIDENCE = 1_000_000_000
MAX_MIN_EVIDENCE = 10_000
MAX_PAIRS = 1_000


def check_name(value: str, what: str, max_len: int = MAX_NAME) -> str:
    """A student, group or skill name as edge.limits.name_problem allows it (else GroupingError)."""
    if (problem := name_problem(value, what, max_len)) is not None:
        raise GroupingError(problem)
    return value


@dataclass(frozen=True)
class StudentScore:
    """One student's mastery of the focus skill: P(known) (None when unknown) and the number of opportunities."""

    p_known: float | None
    n: int

    def __post_init__(self) -> None:
        p = self.p_known
        if p is not None and (isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0
                              or math.isnan(p)):
            raise GroupingError(f"p_known must be a number in [0, 1], got {p!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not 0 <= self.n <= MAX_EVIDENCE:
            raise GroupingError(f"the evidence count must be a whole number in [0, {MAX_EVIDENCE}], got {self.n!r}")


@dataclass(frozen=True)
class Options:
    """How to group: G (None = the plan's station count), size bounds, stability margin, mode, thin threshold."""

    groups: int | None = None
    min_size: int = 3
    max_size: int = 6
    margin: float = 0.05
    mode: Mode = "homogeneous"
    min_evidence: int = 3

    def check(self) -> None:
        """Raise GroupingError naming the first option out of its bounds."""
        def whole(value: Any, name: str, lo: int, hi: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise GroupingError(f"{name} must be a whole number in [{lo}, {hi}], got {value!r}")

        if self.groups is not None:
            whole(self.groups, "groups", 1, MAX_GROUPS)
        whole(self.min_size, "min_size", 1, MAX_SIZE)
        whole(self.max_size, "max_size", 1, MAX_SIZE)
        if self.min_size > self.max_size:
            raise GroupingError(f"min_size {self.min_size} is larger than max_size {self.max_size}")
        m = self.margin
        if isinstance(m, bool) or not isinstance(m, int | float) or math.isnan(m) or not 0.0 <= m <= 0.5:
            raise GroupingError(f"margin must be a number in [0, 0.5], got {m!r}")
        if self.mode not in MODES:
            raise GroupingError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        whole(self.min_evidence, "min_evidence", 0, MAX_MIN_EVIDENCE)


@dataclass(frozen=True)
class Constraints:
    """The teacher's say: student → pinned group name, pairs kept apart, students absent today (left out)."""

    pins: Mapping[str, str] = field(default_factory=dict)
    apart: tuple[tuple[str, str], ...] = ()
    absent: frozenset[str] = frozenset()

    def check(self) -> None:
        if len(self.pins) > MAX_STUDENTS or len(self.absent) > MAX_STUDENTS:
            raise GroupingError(f"at most {MAX_STUDENTS} pins and absent students")
        if len(self.apart) > MAX_PAIRS:
            raise GroupingError(f"at most {MAX_PAIRS} keep-apart pairs, got {len(self.apart)}")
        for student, group in self.pins.items():
            check_name(student, "pinned student")
            check_name(group, f"group pinned for {student!r}")
        for pair in self.apart:
            if len(pair) != 2:
                raise GroupingError(f"a keep-apart pair has two students, got {pair!r}")
            a, b = pair
            check_name(a, "keep-apart student")
            check_name(b, "keep-apart student")
            if a == b:
                raise GroupingError(f"cannot keep {a!r} apart from themselves")
        for student in self.absent:
            check_name(student, "absent student")


@dataclass(frozen=True)
class Move:
    """A student changing group: `source` is where they are now (or were proposed), `target` where they go."""

    student: str
    source: str
    target: str

    def to_json(self) -> dict[str, str]:
        return {"student": self.student, "from": self.source, "to": self.target}


@dataclass(frozen=True)
class ProposedGroup:
    """A group of the proposal. `mean_p_known` is over members placed by score (None if all are thin)."""

    name: str
    students: tuple[str, ...]
    mean_p_known: float | None
    first_station: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "students": list(self.students), "mean_p_known": _round(self.mean_p_known),
                "first_station": self.first_station}


@dataclass(frozen=True)
class Proposal:
    """Groups for the next plan, in plan order (group i is at station i in round 1), and why students are where.

    `thin`: too little evidence to place by score; `kept`: stayed in their current group by the margin rule;
    `moved`: students whose group name changes from `current`; `sse`: total within-group sum of squared
    deviations of P(known) over the students placed by score.
    """

    skill: str
    mode: Mode
    groups: tuple[ProposedGroup, ...]
    thin: tuple[str, ...]
    kept: tuple[str, ...]
    moved: tuple[Move, ...]
    sse: float
    absent: tuple[str, ...]
    scores: Mapping[str, StudentScore]
    current: Mapping[str, str]
    teacher_group: str | None = None  # the group at the teacher station in round 1 (the lowest mean)

    def group_of(self) -> dict[str, str]:
        """student → group name."""
        return {s: g.name for g in self.groups for s in g.students}

    def to_json(self) -> dict[str, Any]:
        """The documented JSON object (`edge groups propose --json`, GET /api/v1/groups/proposal)."""
        placed = sorted(self.group_of())
        return {
            "skill": self.skill,
            "mode": self.mode,
            "groups": [g.to_json() for g in self.groups],
            "thin": list(self.thin),
            "moved": [m.to_json() for m in self.moved],
            "sse": _round(self.sse),
            "kept": list(self.kept),
            "absent": list(self.absent),
            "teacher_group": self.teacher_group,
            "scores": {s: {"p_known": _round(self.scores[s].p_known), "n": self.scores[s].n} for s in placed},
        }


def _round(x: float | None) -> float | None:
    """JSON numbers at 12 significant digits: stable across platforms, far below any meaningful difference."""
    return None if x is None else float(f"{x:.12g}")


def group_stats(members: Sequence[str], scores: Mapping[str, StudentScore],
                placed: frozenset[str] | set[str]) -> tuple[float | None, float]:
    """(mean, sum of squared deviations) of P(known) over the members in `placed`."""
    values = [p for s in members if s in placed and (p := scores[s].p_known) is not None]
    if not values:
        return None, 0.0
    mean = math.fsum(values) / len(values)
    return mean, math.fsum((v - mean) ** 2 for v in values)


def defaults(config: EdgeConfig) -> Options:
    """The proposal options of the config's `[groups]` section."""
    g = config.groups
    return Options(min_size=g.min_size, max_size=g.max_size, margin=g.margin,
                   mode="mixed" if g.mode == "mixed" else "homogeneous", min_evidence=g.min_evidence)
