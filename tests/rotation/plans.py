"""Plans used across the rotation tests."""

from __future__ import annotations

from edge.rotation.plan import Group, Plan, Station


def make_plan(stations: int = 3, groups: int = 3, work_minutes: float = 15, warning: float = 60,
              transition: float = 90, rounds: int = 0) -> Plan:
    kinds = ("online", "teacher", "offline")
    return Plan(
        name="Test plan", work_minutes=work_minutes, warning_seconds=warning, transition_seconds=transition,
        rounds=rounds,
        stations=tuple(Station(f"S{i}", kinds[i % 3]) for i in range(stations)),
        groups=tuple(Group(chr(ord("A") + i)) for i in range(groups)),
    )


PLAN_TOML = """
[plan]
name = "Math block"
work_minutes = 15
warning_seconds = 60
transition_seconds = 90
rounds = 4
[[plan.stations]]
name = "Online"
kind = "online"
lessons = ["district/fractions/intro.html"]
[[plan.stations]]
name = "Teacher"
kind = "teacher"
[[plan.stations]]
name = "Practice"
kind = "offline"
[[plan.stations]]
name = "Games"
kind = "offline"
[[plan.groups]]
name = "A"
members = ["s-101", "s-102"]
[[plan.groups]]
name = "B"
[[plan.groups]]
name = "C"
"""
