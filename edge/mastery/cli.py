"""`edge mastery replay` and `edge mastery serve`."""

from __future__ import annotations

import argparse

from edge.cli_support import SubParsers, config_from, emit
from edge.mastery import replay as rp


def register(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    """Add `edge mastery ...` to the top-level sub-commands."""
    p = sub.add_parser("mastery", parents=[parent], help="mastery model: evidence replay and the mastery service")
    msub = p.add_subparsers(dest="mastery_command", metavar="COMMAND", required=True)

    r = msub.add_parser(
        "replay", parents=[parent], help="recompute BKT estimates from an events CSV",
        description="Replay EVENTS.csv (event_id, student, skill, correct, timestamp) per (student, skill) in "
        "(timestamp, event_id) order; write event_id, student, skill, p_correct, p_known_after.",
    )
    r.add_argument("events", metavar="EVENTS.csv")
    r.add_argument("--params", metavar="PARAMS.toml", required=True,
                   help='[default] and [skills."<skill>"] tables with prior, learn, guess, slip, forget')
    r.add_argument("--out", metavar="OUT.csv", help="write here (atomically) instead of stdout")
    r.set_defaults(func=cmd_replay)

    s = msub.add_parser("serve", parents=[parent], help="run the mastery service in the foreground")
    s.set_defaults(func=cmd_serve)


def cmd_replay(args: argparse.Namespace) -> int:
    params = rp.load_params_file(args.params)
    events = rp.read_events(args.events)
    text = rp.format_rows(rp.replay(events, params))
    emit(text, args.out)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from edge.mastery.app import serve

    serve(config_from(args))
    return 0
