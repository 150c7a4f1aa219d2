"""The rotation state as the pages and the API see it (GET /api/v1/rotation): no student ids, ever."""

from __future__ import annotations

from typing import Any

from edge.rotation.engine import Snapshot
from edge.rotation.plan import Plan
from edge.rotation.status_line import clock_text, phase_word
from edge.rotation.web.context import WebContext


def state_json(c: WebContext, snap: Snapshot | None = None, plan: Plan | None = None) -> dict[str, Any]:
    """Everything a page needs to draw itself; wall-clock deadlines are for API clients, pages count down
    from `remaining_s` on their own clock (a Chromebook's clock may be minutes off)."""
    engine = c.rotation.engine
    if snap is None:
        snap = engine.snapshot()
    if plan is None:
        plan = engine.plan
    if plan is not None and plan.name != snap.plan:
        plan = None  # changed between the two reads; the next poll gets both
    active = snap.status in ("running", "paused")
    now = c.now()
    running = snap.status == "running"
    stations = [{"name": s.name, "kind": s.kind, "lessons": list(s.lessons)} for s in plan.stations] \
        if plan is not None and active else []
    return {
        "status": snap.status,
        "phase": snap.phase,
        "phase_word": phase_word(snap, plan.warning_seconds if plan else None),
        "underlying_phase": snap.underlying_phase,
        "plan": snap.plan,
        "round": snap.round,
        "rounds": snap.rounds,
        "remaining_s": round(snap.remaining_s, 3),
        "countdown_text": clock_text(snap.stage_remaining_s),
        "stage_remaining_s": round(snap.stage_remaining_s, 3),
        "phase_ends_at": round(now + snap.remaining_s, 3) if running else None,
        "stage_ends_at": round(now + snap.stage_remaining_s, 3) if running else None,
        "server_time": round(now, 3),
        "groups": list(snap.assignments) if active else [],
        "assignments": dict(snap.assignments) if active else {},
        "next_assignments": dict(snap.next_assignments) if active else {},
        "stations": stations,
        "quiet": snap.quiet,
        "fault": snap.fault,
        "seq": snap.seq,
        "server_id": c.server_id,
        "teacher_setup": c.teacher_pin.awaiting_setup() is not None,
    }
