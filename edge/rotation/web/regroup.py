"""Regroup by mastery: the proposal (edge.rotation.groups) for a saved plan from the mastery service's minutes-old
estimates, the teacher's changes (move students, pin, keep apart, absent), applied to the saved plan for its
next start (a running rotation is never reshuffled), and the history of applied groupings.

Shared by the teacher page (/teacher/regroup) and the API (/api/v1/groups/...): both take the same
parameters, so a proposal is recomputed (it is deterministic) rather than stored between requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge.exc import GroupingError, PlanError
from edge.limits import SKILL_MAX
from edge.rotation.groups.history import GroupChange, applied, mastery_change
from edge.rotation.groups.history_store import GroupingHistory, history_path
from edge.rotation.groups.model import MODES, Constraints, Options, Proposal, StudentScore, check_name
from edge.rotation.groups.propose import apply_to_plan, plan_membership, propose, revise
from edge.rotation.groups.remote import fetch_scores
from edge.rotation.groups.sources import focus_skills
from edge.rotation.plan import Plan
from edge.rotation.web.context import WebContext
from edge.sync.roster import load_roster

MAX_QUERY = 2000  # characters of one parameter (a list of pins or pairs)


@dataclass(frozen=True)
class RegroupRequest:
    plan: str
    skill: str | None
    options: Options
    constraints: Constraints


def _whole(raw: str | None, name: str, default: int | None) -> int | None:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 6:
        raise GroupingError(f"{name} must be a whole number, got {raw[:20]!r}")
    return int(raw)


def _parse_list(raw: str, name: str) -> list[str]:
    if len(raw) > MAX_QUERY:
        raise GroupingError(f"{name} is longer than {MAX_QUERY} characters")
    return [x.strip() for x in raw.replace(";", "\n").splitlines() if x.strip()]


QUERY_PARAMETERS = ("plan", "skill", "mode", "margin", "groups", "min_size", "max_size", "min_evidence", "pins",
                    "apart", "absent")


def parse_request(args: Mapping[str, Any], defaults: Options) -> RegroupRequest:
    """The proposal's parameters from a query string or a JSON body (lists may be JSON lists or text)."""
    def text(name: str) -> str | None:
        v = args.get(name)
        return None if v is None else str(v).strip()

    plan = text("plan") or ""
    check_name(plan, "plan")
    skill = text("skill") or None
    if skill is not None:
        check_name(skill, "skill", SKILL_MAX)
    mode = text("mode") or defaults.mode
    if mode not in MODES:
        raise GroupingError(f"mode must be one of {', '.join(MODES)}, got {str(mode)[:20]!r}")
    margin_raw = text("margin") or ""
    try:
        margin = float(margin_raw) if margin_raw else defaults.margin
    except ValueError:
        raise GroupingError(f"margin must be a number, got {margin_raw[:20]!r}") from None
    options = Options(groups=_whole(text("groups"), "groups", None),
                      min_size=_whole(text("min_size"), "min_size", defaults.min_size) or defaults.min_size,
                      max_size=_whole(text("max_size"), "max_size", defaults.max_size) or defaults.max_size,
                      margin=margin, mode="mixed" if mode == "mixed" else "homogeneous",
                      min_evidence=_whole(text("min_evidence"), "min_evidence", defaults.min_evidence) or 0)
    options.check()

    def items(name: str) -> list[str]:
        v = args.get(name)
        if isinstance(v, list):
            return [str(x).strip() for x in v if str(x).strip()]
        return _parse_list(str(v), name) if v else []

    pins: dict[str, str] = {}
    for item in items("pins"):
        student, sep, group = item.partition("=")
        if not sep:
            raise GroupingError(f"a pin is STUDENT=GROUP, got {item[:40]!r}")
        pins[student.strip()] = group.strip()
    apart = []
    for item in items("apart"):
        a, sep, b = item.partition(",")
        if not sep:
            raise GroupingError(f"keep-apart pairs are A,B, got {item[:40]!r}")
        apart.append((a.strip(), b.strip()))
    constraints = Constraints(pins=pins, apart=tuple(apart), absent=frozenset(items("absent")))
    constraints.check()
    return RegroupRequest(plan, skill, options, constraints)


def saved_plan(c: WebContext, name: str) -> Plan:
    try:
        return c.plans.get(name)
    except PlanError:
        raise GroupingError(f"there is no saved plan called {name!r}") from None


def class_students(c: WebContext, plan: Plan, scores: Mapping[str, StudentScore]) -> list[str]:
    """The class: the roster class that overlaps the plan most (when a roster was imported), else the plan's
    members and every student the mastery service knows."""
    members = set(plan_membership(plan))
    roster = load_roster(c.config)
    if roster is not None and roster.classes:
        best = max(sorted(roster.classes), key=lambda cid: len(members & set(roster.students_of(cid))))
        if members & set(roster.students_of(best)) or not members:
            return sorted(set(roster.students_of(best)) | members)
    return sorted(members | set(scores))


def display_names(c: WebContext) -> dict[str, str]:
    """Roster names, for the teacher's screen only, where the district allowed keeping them."""
    roster = load_roster(c.config)
    if roster is None or not c.config.district.roster_names:
        return {}
    return {uid: " ".join(x for x in (u.get("givenName", ""), u.get("familyName", "")) if x)
            for uid, u in roster.users.items() if u.get("givenName") or u.get("familyName")}


def make_proposal(c: WebContext, req: RegroupRequest) -> tuple[Proposal, Plan]:
    plan = saved_plan(c, req.plan)
    skill = req.skill
    if skill is None:
        skills = focus_skills(c.config, plan)
        if not skills:
            raise GroupingError(f"choose a skill: the lessons of {plan.name!r}'s online station name none")
        skill = skills[0]
    scores = fetch_scores(c.config, skill)
    return propose(skill, scores, students=class_students(c, plan, scores), plan=plan, options=req.options,
                   constraints=req.constraints), plan


def apply(c: WebContext, req: RegroupRequest, groups: Sequence[tuple[str, Sequence[str]]]) -> tuple[Plan, int,
                                                                                                       Proposal]:
    """Write the teacher's groups into the saved plan (it takes effect at its next start) and record it."""
    proposal, plan = make_proposal(c, req)
    final = revise(proposal, groups, plan)
    new_plan = apply_to_plan(plan, final)
    with c.write_lock:
        c.plans.save(new_plan)
    with GroupingHistory(history_path(c.config.state_dir)) as history:
        gid = history.record(applied(proposal, final, plan=new_plan.name))
    return new_plan, gid, final


def history(c: WebContext, skill: str | None, limit: int = 10) -> tuple[list[dict[str, Any]], list[GroupChange]]:
    """Applied groupings (newest first) and, per group of the latest, the mastery change since."""
    with GroupingHistory(history_path(c.config.state_dir)) as store:
        records = store.list(skill, limit=limit)
    change: list[GroupChange] = []
    if records:
        change = mastery_change(records[0], fetch_scores(c.config, records[0].skill))
    return [r.to_json() for r in records], change


def form_constraints(form: Mapping[str, str], groups_of: Mapping[str, str]) -> dict[str, Any]:
    """The page's per-card checkboxes and keep-apart text as proposal parameters: a checked pin keeps the student
    in the group chosen on their card."""
    return {
        "pins": [f"{s}={groups_of[s]}" for s in groups_of if form.get(f"pin:{s}") and groups_of[s]],
        "absent": [s for s in groups_of if form.get(f"absent:{s}")] + _parse_list(form.get("absent", ""), "absent"),
        "apart": form.get("apart", ""),
    }


def form_groups(form: Mapping[str, str], students: Sequence[str], names: Sequence[str]) -> dict[str, str]:
    """student -> the group chosen on their card (only known groups count)."""
    known = set(names)
    return {s: g for s in students if (g := form.get(f"group:{s}", "")) in known}
