"""Rotation plans: parsing/validating the plan TOML and computing the timeline (the preview format)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from edge import limits
from edge.exc import PlanError, PlanErrors
from edge.limits import finite, name_problem
from edge.tomlfile import read_toml

KINDS = ("online", "teacher", "offline")
Phase = Literal["work", "warning", "transition"]
PLAN_KEYS = ("name", "work_minutes", "warning_seconds", "transition_seconds", "rounds", "stations", "groups")


@dataclass(frozen=True)
class Station:
    name: str
    kind: str
    lessons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Segment:
    """One stretch of the timeline; a transition carries the round (and assignments) that follows it."""

    round: int
    phase: Phase
    start_s: float
    end_s: float
    assignments: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {"round": self.round, "phase": self.phase, "start_s": _num(self.start_s),
                "end_s": _num(self.end_s), "assignments": dict(self.assignments)}


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


@dataclass(frozen=True)
class Plan:
    """A validated plan. Group i is at station (i + r - 1) mod n in round r (plan order, r from 1)."""

    name: str
    work_minutes: float
    stations: tuple[Station, ...]
    groups: tuple[Group, ...]
    warning_seconds: float = 60
    transition_seconds: float = 90
    rounds: int = 0  # 0 = one round per station

    @property
    def work_s(self) -> float:
        return self.work_minutes * 60

    @property
    def round_count(self) -> int:
        return self.rounds or len(self.stations)

    @property
    def total_s(self) -> float:
        n = self.round_count
        return n * self.work_s + (n - 1) * self.transition_seconds

    def assignments(self, round_no: int) -> dict[str, str]:
        n = len(self.stations)
        return {g.name: self.stations[(i + round_no - 1) % n].name for i, g in enumerate(self.groups)}

    def station(self, name: str) -> Station:
        return next(s for s in self.stations if s.name == name)

    def round_start_s(self, round_no: int) -> float:
        """Offset of round `round_no`'s work start from the plan start."""
        return (round_no - 1) * (self.work_s + self.transition_seconds)

    def timeline(self) -> list[Segment]:
        """Every segment in time order; zero-length phases (no warning / no transition) are left out."""
        segments: list[Segment] = []
        for r in range(1, self.round_count + 1):
            start = self.round_start_s(r)
            a = self.assignments(r)
            if r > 1 and self.transition_seconds > 0:
                segments.append(Segment(r, "transition", start - self.transition_seconds, start, a))
            work_end = start + self.work_s
            warn_start = work_end - self.warning_seconds
            segments.append(Segment(r, "work", start, warn_start, a))
            if self.warning_seconds > 0:
                segments.append(Segment(r, "warning", warn_start, work_end, a))
        return segments

    def to_toml(self) -> dict[str, Any]:
        """The plan-file document (inverse of parse_plan)."""
        plan: dict[str, Any] = {
            "name": self.name, "work_minutes": _num(self.work_minutes),
            "warning_seconds": _num(self.warning_seconds), "transition_seconds": _num(self.transition_seconds),
        }
        if self.rounds:
            plan["rounds"] = self.rounds
        plan["stations"] = [
            {"name": s.name, "kind": s.kind, **({"lessons": list(s.lessons)} if s.lessons else {})}
            for s in self.stations
        ]
        plan["groups"] = [
            {"name": g.name, **({"members": list(g.members)} if g.members else {})} for g in self.groups
        ]
        return {"plan": plan}


class _Problems:
    """Collects every problem of one plan document, so the teacher sees them all at once."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[PlanError] = []

    def add(self, key: str, reason: str) -> None:
        self.errors.append(PlanError(self.file, key, reason))

    def check(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise PlanErrors(self.errors)


def _number(data: Mapping[str, Any], key: str, bad: _Problems, default: float | None,
            low: float, high: float, low_open: bool = False) -> float | None:
    """The number at `key` within [low, high] (or (low, high] if `low_open`), else None with the problem noted."""
    if key not in data:
        if default is None:
            bad.add(f"plan.{key}", "missing")
        return default
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        bad.add(f"plan.{key}", f"must be a number, got {type(v).__name__} {v!r}")
        return None
    if not finite(float(v)):
        bad.add(f"plan.{key}", f"must be a finite number, got {v!r}")
        return None
    if low_open and v <= low:
        bad.add(f"plan.{key}", f"must be greater than {_num(low)}, got {_num(v)}")
    elif v < low:
        bad.add(f"plan.{key}", f"must not be negative, got {_num(v)}" if low == 0 else
                f"must be at least {_num(low)}, got {_num(v)}")
    elif v > high:
        bad.add(f"plan.{key}", f"must be at most {_num(high)}, got {_num(v)}")
    else:
        return float(v)
    return None


def _str_list(v: Any, key: str, bad: _Problems, max_items: int, max_len: int, what: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        bad.add(key, "must be a list of non-empty strings")
        return ()
    if len(v) > max_items:
        bad.add(key, f"at most {max_items} {what}s (got {len(v)})")
        return ()
    for j, x in enumerate(v):
        if (problem := name_problem(x, what, max_len)) is not None:
            bad.add(f"{key}[{j}]", problem)
            return ()
    return tuple(v)


def _lesson_path(p: str, key: str, bad: _Problems) -> None:
    parts = p.split("/")
    if p.startswith("/") or "\\" in p or any(part in ("", ".", "..") for part in parts) or len(parts) < 2:
        bad.add(key, f"{p!r} must be a cache path '<origin>/<path>' without '..' or empty parts")


def _tables(data: Mapping[str, Any], key: str, bad: _Problems, allowed: Sequence[str],
            max_items: int) -> list[Mapping[str, Any]]:
    """The array of tables at `key` with each item's name checked (bad items are left out, noted)."""
    items = data.get(key)
    if items is None:
        bad.add(f"plan.{key}", "missing (at least one is needed)")
        return []
    if not isinstance(items, list) or not all(isinstance(x, Mapping) for x in items):
        bad.add(f"plan.{key}", f"must be an array of tables ([[plan.{key}]])")
        return []
    if not items:
        bad.add(f"plan.{key}", "must not be empty (at least one is needed)")
        return []
    if len(items) > max_items:
        bad.add(f"plan.{key}", f"at most {max_items} (got {len(items)})")
        return []
    names: set[str] = set()
    good: list[Mapping[str, Any]] = []
    for i, item in enumerate(items):
        unknown = [k for k in item if k not in allowed]
        for k in unknown:
            bad.add(f"plan.{key}[{i}].{k}", f"unknown key (known: {', '.join(allowed)})")
        name = item.get("name")
        if (problem := name_problem(name)) is not None:
            bad.add(f"plan.{key}[{i}].name", problem)
            continue
        if name in names:
            bad.add(f"plan.{key}[{i}].name", f"duplicate name {name!r}")
            continue
        names.add(name)
        if not unknown:
            good.append(item)
    return good


def parse_plan(doc: Mapping[str, Any], file: str) -> Plan:
    """Validate a plan document (`[plan]` table); every problem is reported at once as `<file>: <key>: <reason>`
    (PlanError for one, PlanErrors for several). Every number is finite and within edge.limits."""
    bad = _Problems(file)
    extra = [k for k in doc if k != "plan"]
    if extra:
        raise PlanError(file, extra[0], "unknown key (a plan file has one [plan] table)")
    data = doc.get("plan")
    if not isinstance(data, Mapping):
        raise PlanError(file, "plan", "missing [plan] table")
    for k in data:
        if k not in PLAN_KEYS:
            bad.add(f"plan.{k}", f"unknown key (known: {', '.join(PLAN_KEYS)})")
    name = data.get("name")
    if (problem := name_problem(name, "the plan name")) is not None:
        bad.add("plan.name", problem)
    work_minutes = _number(data, "work_minutes", bad, None, 0, limits.WORK_MINUTES_MAX, low_open=True)
    if work_minutes is not None and work_minutes < limits.WORK_MINUTES_MIN:
        bad.add("plan.work_minutes", f"must be at least {_num(limits.WORK_MINUTES_MIN)} (3 seconds)")
        work_minutes = None
    warning = _number(data, "warning_seconds", bad, 60, 0, limits.WARNING_SECONDS_MAX)
    if warning is not None and work_minutes is not None and warning >= work_minutes * 60:
        bad.add("plan.warning_seconds", f"must be shorter than the work period ({_num(work_minutes * 60)} s)")
    transition = _number(data, "transition_seconds", bad, 90, 0, limits.TRANSITION_SECONDS_MAX)
    raw_rounds = data.get("rounds", 0)
    rounds = limits.whole(raw_rounds)
    if "rounds" in data and (rounds is None or rounds < 1):
        bad.add("plan.rounds", f"must be a whole number of at least 1, got {raw_rounds!r}")
    elif rounds is not None and rounds > limits.ROUNDS_MAX:
        bad.add("plan.rounds", f"must be at most {limits.ROUNDS_MAX}, got {raw_rounds!r}")

    stations = []
    for i, st in enumerate(_tables(data, "stations", bad, ("name", "kind", "lessons"), limits.STATIONS_MAX)):
        kind = st.get("kind")
        if kind not in KINDS:
            bad.add(f"plan.stations[{i}].kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        key = f"plan.stations[{i}].lessons"
        lessons = _str_list(st.get("lessons", []), key, bad, limits.LESSONS_MAX, limits.LESSON_PATH_MAX,
                            "lesson path")
        for j, lesson in enumerate(lessons):
            _lesson_path(lesson, f"{key}[{j}]", bad)
        stations.append(Station(st["name"], str(kind), lessons))
    groups = []
    seen: dict[str, str] = {}
    for i, g in enumerate(_tables(data, "groups", bad, ("name", "members"), limits.GROUPS_MAX)):
        key = f"plan.groups[{i}].members"
        members = _str_list(g.get("members", []), key, bad, limits.MEMBERS_MAX, limits.STUDENT_ID_MAX,
                            "student id")
        for j, member in enumerate(members):
            if member in seen:
                bad.add(f"{key}[{j}]", f"{member!r} is already in group {seen[member]!r}")
            seen.setdefault(member, g["name"])
        groups.append(Group(g["name"], members))
    bad.check()
    assert isinstance(name, str) and work_minutes is not None and warning is not None and transition is not None
    return Plan(name=name.strip(), work_minutes=work_minutes, stations=tuple(stations), groups=tuple(groups),
                warning_seconds=warning, transition_seconds=transition, rounds=rounds or 0)


def load_plan(path: str) -> Plan:
    """Read and validate a plan file."""
    return parse_plan(read_toml(path, PlanError), path)
