"""Rotation plans: parsing/validating the plan TOML and computing the timeline (the preview format)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from edge.exc import PlanError
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


def _number(data: Mapping[str, Any], key: str, file: str, default: float | None) -> float:
    if key not in data:
        if default is None:
            raise PlanError(file, f"plan.{key}", "missing")
        return default
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise PlanError(file, f"plan.{key}", f"must be a number, got {type(v).__name__} {v!r}")
    return float(v)


def _str_list(v: Any, file: str, key: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise PlanError(file, key, "must be a list of non-empty strings")
    return tuple(v)


def _lesson_path(p: str, file: str, key: str) -> str:
    parts = p.split("/")
    if p.startswith("/") or "\\" in p or any(part in ("", ".", "..") for part in parts) or len(parts) < 2:
        raise PlanError(file, key, f"{p!r} must be a cache path '<origin>/<path>' without '..' or empty parts")
    return p


def _tables(data: Mapping[str, Any], key: str, file: str, allowed: Sequence[str]) -> list[Mapping[str, Any]]:
    items = data.get(key)
    if items is None:
        raise PlanError(file, f"plan.{key}", "missing (at least one is needed)")
    if not isinstance(items, list) or not all(isinstance(x, Mapping) for x in items):
        raise PlanError(file, f"plan.{key}", f"must be an array of tables ([[plan.{key}]])")
    if not items:
        raise PlanError(file, f"plan.{key}", "must not be empty (at least one is needed)")
    names: set[str] = set()
    for i, item in enumerate(items):
        for k in item:
            if k not in allowed:
                raise PlanError(file, f"plan.{key}[{i}].{k}", f"unknown key (known: {', '.join(allowed)})")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise PlanError(file, f"plan.{key}[{i}].name", "must be a non-empty string")
        if name in names:
            raise PlanError(file, f"plan.{key}[{i}].name", f"duplicate name {name!r}")
        names.add(name)
    return items


def parse_plan(doc: Mapping[str, Any], file: str) -> Plan:
    """Validate a plan document (`[plan]` table); errors are `<file>: <key>: <reason>`."""
    extra = [k for k in doc if k != "plan"]
    if extra:
        raise PlanError(file, extra[0], "unknown key (a plan file has one [plan] table)")
    data = doc.get("plan")
    if not isinstance(data, Mapping):
        raise PlanError(file, "plan", "missing [plan] table")
    for k in data:
        if k not in PLAN_KEYS:
            raise PlanError(file, f"plan.{k}", f"unknown key (known: {', '.join(PLAN_KEYS)})")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PlanError(file, "plan.name", "must be a non-empty string")
    work_minutes = _number(data, "work_minutes", file, None)
    if work_minutes <= 0:
        raise PlanError(file, "plan.work_minutes", f"must be greater than 0, got {_num(work_minutes)}")
    warning = _number(data, "warning_seconds", file, 60)
    if warning < 0:
        raise PlanError(file, "plan.warning_seconds", f"must not be negative, got {_num(warning)}")
    if warning >= work_minutes * 60:
        raise PlanError(file, "plan.warning_seconds",
                        f"must be shorter than the work period ({_num(work_minutes * 60)} s)")
    transition = _number(data, "transition_seconds", file, 90)
    if transition < 0:
        raise PlanError(file, "plan.transition_seconds", f"must not be negative, got {_num(transition)}")
    rounds = data.get("rounds", 0)
    if "rounds" in data and (isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1):
        raise PlanError(file, "plan.rounds", f"must be a whole number of at least 1, got {rounds!r}")

    stations = []
    for i, s in enumerate(_tables(data, "stations", file, ("name", "kind", "lessons"))):
        kind = s.get("kind")
        if kind not in KINDS:
            raise PlanError(file, f"plan.stations[{i}].kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
        lessons = _str_list(s.get("lessons", []), file, f"plan.stations[{i}].lessons")
        for j, lesson in enumerate(lessons):
            _lesson_path(lesson, file, f"plan.stations[{i}].lessons[{j}]")
        stations.append(Station(s["name"], kind, lessons))
    groups = [
        Group(g["name"], _str_list(g.get("members", []), file, f"plan.groups[{i}].members"))
        for i, g in enumerate(_tables(data, "groups", file, ("name", "members")))
    ]
    return Plan(name=name.strip(), work_minutes=work_minutes, stations=tuple(stations), groups=tuple(groups),
                warning_seconds=warning, transition_seconds=transition, rounds=rounds)


def load_plan(path: str) -> Plan:
    """Read and validate a plan file."""
    return parse_plan(read_toml(path, PlanError), path)
