"""The built-in demo plan `edge run` starts on a laptop with no config, so a newcomer sees a full rotation."""

from __future__ import annotations

from edge.rotation.plan import Group, Plan, Station

DEMO_PLAN = Plan(
    name="Demo rotation",
    work_minutes=1,
    warning_seconds=15,
    transition_seconds=10,
    stations=(
        Station("Online", "online", ("demo/fractions/intro.html", "demo/fractions/video.html")),
        Station("Teacher table", "teacher"),
        Station("Practice", "offline", ("demo/fractions/worksheet.html",)),
    ),
    groups=(Group("A", ("s-101", "s-102")), Group("B", ("s-103", "s-104")), Group("C", ("s-105",))),
)
