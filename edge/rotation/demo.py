"""The built-in demo plan `edge run` starts on a laptop with no config, so a newcomer sees a full rotation.

Its lesson links point at the lesson cache's built-in demo pack (origin `demo`, content_cache/demo.py).
"""

from __future__ import annotations

from edge.rotation.plan import Group, Plan, Station

DEMO_PLAN = Plan(
    name="Demo rotation",
    work_minutes=1,
    warning_seconds=15,
    transition_seconds=10,
    stations=(
        Station("Online", "online", ("demo/fractions.html", "demo/video/clip.bin")),
        Station("Teacher table", "teacher"),
        Station("Practice", "offline", ("demo/water-cycle.html", "demo/loops.html")),
    ),
    groups=(Group("A", ("s-101", "s-102")), Group("B", ("s-103", "s-104")), Group("C", ("s-105",))),
)
