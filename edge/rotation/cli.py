"""`edge rotation ...`: preview, save, list and delete plans, run one in the foreground, show state."""

from __future__ import annotations

import argparse
import json
import sys

from edge.cli_support import SubParsers, config_from
from edge.exc import RotationError
from edge.rotation.periods import periods_starting, saved_periods
from edge.rotation.plan import load_plan
from edge.rotation.state import JsonStateFile
from edge.rotation.status_line import clock_text
from edge.rotation.store import PlanStore


def cmd_preview(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    segments = plan.timeline()
    if args.json:
        json.dump([s.as_json() for s in segments], sys.stdout)
        sys.stdout.write("\n")
        return 0
    print(f"{plan.name}: {plan.round_count} rounds, {clock_text(plan.total_s)} in all")
    print(f"{'start':>7}  {'phase':<10} {'round':>5}  groups → stations")
    for s in segments:
        where = ", ".join(f"{g}→{st}" for g, st in s.assignments.items())
        print(f"{clock_text(s.start_s):>7}  {s.phase:<10} {s.round:>5}  {where}")
    print(f"{clock_text(plan.total_s):>7}  done")
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan)
    path = PlanStore(config_from(args).plans_dir).save(plan, replace=args.force)
    print(f"saved {plan.name!r} to {path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = PlanStore(config_from(args).plans_dir)
    for plan in store.plans():
        print(f"{plan.name}: {len(plan.stations)} stations, {len(plan.groups)} groups, "
              f"{plan.round_count} rounds, {clock_text(plan.total_s)}")
    for bad in store.broken():
        print(f"broken: {bad.message}", file=sys.stderr)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    config = config_from(args)
    used = periods_starting(args.name, [*config.rotation.periods, *saved_periods(config.state_dir)])
    if used and not args.force:
        raise RotationError(f"the plan {args.name!r} is started by the bell of {', '.join(map(repr, used))}; "
                            "change those periods first (or delete anyway with --force)")
    PlanStore(config.plans_dir).delete(args.name)
    print(f"deleted {args.name!r}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """The last persisted state (what a restart would resume)."""
    cfg = config_from(args)
    state = JsonStateFile(cfg.state_dir / "rotation.json").load()
    if state is None:
        print("idle (no saved rotation state)")
        return 0
    plan = state.get("plan", {}).get("plan", {}).get("name", "-")
    line = f"{state['status']}: {plan}"
    if "round" in state:
        line += f", round {state['round']} ({state['stage']})"
    if "stage_remaining_s" in state:
        line += f", {clock_text(state['stage_remaining_s'])} left when saved"
    print(line)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge.rotation.console import run_console
    from edge.rotation.service import RotationService
    from edge.serving.lifecycle import stop_on_signal

    config = config_from(args)
    plan = load_plan(args.plan) if args.plan else None
    with stop_on_signal() as stopping, RotationService(config) as rotation:
        run_console(rotation, plan, stopping, until_done=plan is not None)  # a plan given here ends the run
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from edge.rotation.daemon import serve

    return serve(config_from(args))


def register(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    rot = sub.add_parser("rotation", parents=[parent], help="rotation plans and the timer")
    rsub = rot.add_subparsers(dest="rotation_command", metavar="ACTION", required=True)
    p = rsub.add_parser("preview", parents=[parent], help="print a plan's timeline without running it")
    p.add_argument("plan", metavar="PLAN.toml")
    p.add_argument("--json", action="store_true", help="print the segments as one JSON array")
    p.set_defaults(func=cmd_preview)
    p = rsub.add_parser("save", parents=[parent], help="validate a plan file and save it on this unit")
    p.add_argument("plan", metavar="PLAN.toml")
    p.add_argument("--force", action="store_true", help="replace a saved plan of the same name (or file name)")
    p.set_defaults(func=cmd_save)
    p = rsub.add_parser("list", parents=[parent], help="list saved plans")
    p.set_defaults(func=cmd_list)
    p = rsub.add_parser("delete", parents=[parent], help="delete a saved plan")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="delete it even though a bell period starts it")
    p.set_defaults(func=cmd_delete)
    p = rsub.add_parser("status", parents=[parent], help="show the saved rotation state")
    p.set_defaults(func=cmd_status)
    p = rsub.add_parser("run", parents=[parent], help="run the timer (and a plan) in the foreground")
    p.add_argument("plan", metavar="PLAN.toml", nargs="?",
                   help="start this plan and exit when it is done (else resume the saved state and keep running)")
    p.set_defaults(func=cmd_run)
    p = rsub.add_parser("serve", parents=[parent],
                        help="the rotation unit: timer, GPIO cues, bells and the pages until SIGTERM/SIGINT")
    p.set_defaults(func=cmd_serve)


