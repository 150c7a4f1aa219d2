"""`edge groups propose | apply | history`: regroup students from mastery on the command line.

Numbers and names are parsed here (not by argparse types) so that every bad value is an
`edge: error: ...` with exit 1, like the rest of the CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edge.cli_support import config_from
from edge.config import EdgeConfig
from edge.exc import GroupingError
from edge.limits import SKILL_MAX
from edge.rotation.groups import sources
from edge.rotation.groups.history import applied, mastery_change
from edge.rotation.groups.history_store import GroupingHistory, history_path
from edge.rotation.groups.model import MODES, Constraints, Options, Proposal, check_name, defaults
from edge.rotation.groups.propose import apply_to_plan, plan_membership, propose
from edge.rotation.plan import Plan
from edge.rotation.store import PlanStore


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add `edge groups ...` to the top-level sub-commands."""
    p = sub.add_parser("groups", parents=[parent], help="regroup students from mastery (proposals, history)")
    gsub = p.add_subparsers(dest="groups_command", metavar="COMMAND", required=True)
    pr = gsub.add_parser("propose", parents=[parent], help="propose groups for a skill from mastery",
                         description="Propose groups from P(known) and evidence counts of one skill (the unit's "
                         "mastery store, or --mastery FILE.csv with columns student,skill,p_known,n).")
    _proposal_options(pr)
    pr.add_argument("--json", action="store_true", help="print one JSON object")
    pr.set_defaults(func=cmd_propose)
    ap = gsub.add_parser("apply", parents=[parent], help="write a proposal's groups into a saved plan",
                         description="Propose as `propose` does and write the groups into the saved plan --plan "
                         "(the lowest-mean group at the teacher station in round 1), recording the grouping in "
                         "the history. The running rotation is never changed.")
    _proposal_options(ap)
    ap.set_defaults(func=cmd_apply)
    hi = gsub.add_parser("history", parents=[parent], help="applied groupings and mastery change since the last")
    hi.add_argument("--skill", help="only groupings of this skill")
    hi.add_argument("--limit", default="10", help="how many (default 10)")
    hi.add_argument("--mastery", metavar="FILE.csv", help="current mastery from this file instead of the store")
    hi.add_argument("--json", action="store_true", help="print one JSON object")
    hi.set_defaults(func=cmd_history)


def _proposal_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skill", help="focus skill (default: the skill of the plan's online-station lessons)")
    p.add_argument("--groups", metavar="G", help="number of groups (default: the plan's station count)")
    p.add_argument("--min-size", metavar="A", help="smallest group (default 3)")
    p.add_argument("--max-size", metavar="B", help="largest group (default 6)")
    p.add_argument("--margin", metavar="M", help="keep students within M of a boundary in their group (0.05)")
    p.add_argument("--mode", metavar="MODE", help="homogeneous (default) or mixed (balanced means)")
    p.add_argument("--min-evidence", metavar="K", help="fewer opportunities than K = thin, not placed by score (3)")
    p.add_argument("--mastery", metavar="FILE.csv", help="student,skill,p_known,n rows instead of the unit's store")
    p.add_argument("--plan", metavar="NAME", help="saved plan with the current groups (default: the rotation's plan)")
    p.add_argument("--class", dest="class_id", metavar="ID", help="roster class (when the roster has several)")
    p.add_argument("--pin", action="append", default=[], metavar="STUDENT=GROUP", help="keep STUDENT in GROUP")
    p.add_argument("--apart", action="append", default=[], metavar="A,B", help="keep A and B in different groups")
    p.add_argument("--absent", action="append", default=[], metavar="STUDENT", help="leave STUDENT out today")


def _whole(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    t = text.strip()
    if not t.isdigit() or len(t) > 6:
        raise GroupingError(f"{name} must be a whole number, got {text!r}")
    return int(t)


def _number(text: str | None, name: str, default: float) -> float:
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        raise GroupingError(f"{name} must be a number, got {text!r}") from None


def options_from(args: argparse.Namespace, base: Options) -> Options:
    mode = base.mode if args.mode is None else args.mode.strip()
    if mode not in MODES:
        raise GroupingError(f"--mode must be one of {', '.join(MODES)}, got {args.mode!r}")
    options = Options(
        groups=None if args.groups is None else _whole(args.groups, "--groups", 0),
        min_size=_whole(args.min_size, "--min-size", base.min_size),
        max_size=_whole(args.max_size, "--max-size", base.max_size),
        margin=_number(args.margin, "--margin", base.margin),
        mode="mixed" if mode == "mixed" else "homogeneous",
        min_evidence=_whole(args.min_evidence, "--min-evidence", base.min_evidence),
    )
    options.check()
    return options


def constraints_from(args: argparse.Namespace) -> Constraints:
    pins: dict[str, str] = {}
    for item in args.pin:
        student, sep, group = item.partition("=")
        if not sep:
            raise GroupingError(f"--pin wants STUDENT=GROUP, got {item!r}")
        student, group = student.strip(), group.strip()
        if student in pins and pins[student] != group:
            raise GroupingError(f"{student!r} is pinned to both {pins[student]!r} and {group!r}")
        pins[student] = group
    pairs = []
    for item in args.apart:
        parts = [x.strip() for x in item.split(",")]
        if len(parts) != 2:
            raise GroupingError(f"--apart wants A,B, got {item!r}")
        pairs.append((parts[0], parts[1]))
    absent = [s.strip() for s in args.absent]
    for s in absent:
        check_name(s, "absent student")
    constraints = Constraints(pins=pins, apart=tuple(pairs), absent=frozenset(absent))
    constraints.check()
    return constraints


def make_proposal(args: argparse.Namespace, config: EdgeConfig) -> tuple[Proposal, Plan | None]:
    """Everything `propose` and `apply` share: sources, options, constraints → the proposal."""
    options = options_from(args, defaults(config))
    constraints = constraints_from(args)
    plan = sources.load_current_plan(config, args.plan)
    skill = (check_name(args.skill.strip(), "--skill", SKILL_MAX) if args.skill is not None
             else sources.pick_skill(config, plan))
    if args.mastery:
        table = sources.read_mastery_csv(args.mastery)
        scores = table.for_skill(skill)
        students = sorted(table.students | set(plan_membership(plan)))
    else:
        table = sources.read_mastery_store(config, skill)
        scores = table.for_skill(skill)
        roster = sources.class_students(config, args.class_id, plan)
        students = sources.class_from_sources(roster, table.students, plan)
    return propose(skill, scores, students=students, plan=plan, options=options, constraints=constraints), plan


def cmd_propose(args: argparse.Namespace) -> int:
    proposal, _ = make_proposal(args, config_from(args))
    if args.json:
        json.dump(proposal.to_json(), sys.stdout, sort_keys=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_proposal(proposal))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    config = config_from(args)
    if args.plan is None:
        raise GroupingError("apply needs --plan NAME (the saved plan to write the groups into)")
    proposal, plan = make_proposal(args, config)
    assert plan is not None
    new_plan = apply_to_plan(plan, proposal)
    PlanStore(config.plans_dir).save(new_plan)
    with GroupingHistory(history_path(config.state_dir)) as history:
        gid = history.record(applied(proposal, plan=new_plan.name))
    sys.stdout.write(format_proposal(proposal))
    print(f"applied to saved plan {new_plan.name!r} (grouping #{gid}); it takes effect when that plan starts")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    config = config_from(args)
    skill = None if args.skill is None else check_name(args.skill.strip(), "--skill", SKILL_MAX)
    limit = _whole(args.limit, "--limit", 10)
    with GroupingHistory(history_path(config.state_dir)) as history:
        records = history.list(skill, limit=limit)
    change = []
    if records:
        last = records[0]
        table = (sources.read_mastery_csv(args.mastery) if args.mastery
                 else sources.read_mastery_store(config, last.skill))
        change = mastery_change(last, table.for_skill(last.skill))
    if args.json:
        json.dump({"groupings": [r.to_json() for r in records], "change_since_last": [c.to_json() for c in change]},
                  sys.stdout)
        sys.stdout.write("\n")
        return 0
    if not records:
        print("no applied groupings yet")
        return 0
    for r in records:
        edits = f", {len(r.changes)} teacher change(s)" if r.changes else ""
        print(f"#{r.id} {r.applied_at} {r.skill} ({r.mode}) → {r.plan or '-'}: {len(r.groups)} groups{edits}")
    print(f"mastery change since #{records[0].id}:")
    for c in change:
        mark = "  (teacher table first)" if c.teacher_table else ""
        if c.change is None:
            print(f"  {c.name:<12} no scores to compare{mark}")
        else:
            print(f"  {c.name:<12} {c.mean_then:.2f} → {c.mean_now:.2f}  ({c.change:+.2f}, "
                  f"{c.compared} students){mark}")
    return 0


def format_proposal(p: Proposal) -> str:
    """The readable table: group, first station, size, mean P(known), students (thin marked '?')."""
    thin = set(p.thin)
    rows = [f"Proposal for skill {p.skill!r} ({p.mode}): {len(p.groups)} groups, sse {p.sse:.4f}"]
    rows.append(f"{'group':<14} {'starts at':<14} {'size':>4}  {'mean':>5}  students")
    for g in p.groups:
        mean = "-" if g.mean_p_known is None else f"{g.mean_p_known:.2f}"
        names = ", ".join(s + ("?" if s in thin else "") for s in g.students)
        rows.append(f"{g.name:<14} {g.first_station or '-':<14} {len(g.students):>4}  {mean:>5}  {names}")
    if p.teacher_group:
        rows.append(f"teacher table first: {p.teacher_group}")
    if p.thin:
        rows.append(f"thin evidence (?, send to the online station first): {', '.join(p.thin)}")
    rows.append(f"moves: {len(p.moved)}" + (" - " + ", ".join(f"{m.student} {m.source}→{m.target}"
                                                              for m in p.moved) if p.moved else ""))
    if p.kept:
        rows.append(f"kept in their group (near a boundary): {', '.join(p.kept)}")
    if p.absent:
        rows.append(f"absent: {', '.join(p.absent)}")
    return "\n".join(rows) + "\n"

