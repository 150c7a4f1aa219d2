"""Applied groupings as records (pure): what was applied, the teacher's changes to the proposal, P(known) at
apply time, and the mastery change of each group since then (did the teacher-table group gain?).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.exc import GroupingError
from edge.rotation.groups.model import Move, Proposal, StudentScore


@dataclass(frozen=True)
class AppliedGroup:
    """One applied group: members with their P(known) at apply time, the group mean (as proposed: over the
    members placed by score) and its round-1 station."""

    name: str
    students: tuple[str, ...]
    p_known: Mapping[str, float | None]
    mean_p_known: float | None
    first_station: str | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "students": list(self.students), "p_known": dict(self.p_known),
                "mean_p_known": self.mean_p_known, "first_station": self.first_station}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AppliedGroup:
        return cls(str(doc["name"]), tuple(doc["students"]), dict(doc["p_known"]), doc["mean_p_known"],
                   doc["first_station"])


@dataclass(frozen=True)
class AppliedGrouping:
    """A grouping the teacher applied (`id` is None until stored)."""

    applied_at: str  # ISO 8601 UTC
    skill: str
    mode: str
    plan: str | None
    groups: tuple[AppliedGroup, ...]
    changes: tuple[Move, ...]  # the teacher's edits: proposed group → applied group
    teacher_group: str | None
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "applied_at": self.applied_at, "skill": self.skill, "mode": self.mode,
                "plan": self.plan, "groups": [g.to_json() for g in self.groups],
                "changes": [c.to_json() for c in self.changes], "teacher_group": self.teacher_group}


def applied(proposal: Proposal, final: Proposal | None = None, *, at: datetime | None = None,
            plan: str | None = None) -> AppliedGrouping:
    """The record of applying `final` (the teacher's revision of `proposal`, or the proposal itself)."""
    final = final or proposal
    when = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    before = proposal.group_of()
    changes = tuple(Move(s, before.get(s, ""), g) for s, g in sorted(final.group_of().items()) if before.get(s) != g)
    groups = tuple(AppliedGroup(g.name, g.students, {s: final.scores[s].p_known for s in g.students},
                                g.mean_p_known, g.first_station) for g in final.groups)
    return AppliedGrouping(when, final.skill, final.mode, plan, groups, changes, final.teacher_group)


@dataclass(frozen=True)
class GroupChange:
    """Mastery change of one applied group: mean P(known) of the same members then and now."""

    name: str
    mean_then: float | None
    mean_now: float | None
    change: float | None
    compared: int  # members with a P(known) both then and now
    teacher_table: bool  # this group was at the teacher station first

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mean_then": self.mean_then, "mean_now": self.mean_now, "change": self.change,
                "compared": self.compared, "teacher_table": self.teacher_table}


def mastery_change(last: AppliedGrouping, now: Mapping[str, StudentScore]) -> list[GroupChange]:
    """Per group of `last`, in its order: mean P(known) of its members then vs now, over the members known
    both times (a member with no score now is left out, not counted as zero)."""
    out = []
    for g in last.groups:
        pairs = [(then, cur) for s in g.students
                 if (then := g.p_known.get(s)) is not None and s in now and (cur := now[s].p_known) is not None]
        if pairs:
            m_then = math.fsum(a for a, _ in pairs) / len(pairs)
            m_now = math.fsum(b for _, b in pairs) / len(pairs)
            out.append(GroupChange(g.name, m_then, m_now, m_now - m_then, len(pairs), g.name == last.teacher_group))
        else:
            out.append(GroupChange(g.name, None, None, None, 0, g.name == last.teacher_group))
    return out


def from_row(row: Mapping[str, Any]) -> AppliedGrouping:
    """Rebuild a stored record (the history store's row: id, applied_at, skill, mode, plan, JSON columns)."""
    try:
        groups = tuple(AppliedGroup.from_json(g) for g in row["groups"])
        changes = tuple(Move(c["student"], c["from"], c["to"]) for c in row["changes"])
    except (KeyError, TypeError) as e:
        raise GroupingError(f"grouping history record {row.get('id')} is malformed: {e}") from None
    return AppliedGrouping(str(row["applied_at"]), str(row["skill"]), str(row["mode"]), row["plan"], groups, changes,
                           row["teacher_group"], int(row["id"]))
