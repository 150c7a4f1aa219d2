"""`edge web serve --config edge.toml`: the pages alone (with the rotation engine and cues), in the foreground."""

from __future__ import annotations

import argparse

from edge.cli_support import config_from


def cmd_serve(args: argparse.Namespace) -> int:
    from edge.web.server import serve

    return serve(config_from(args))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    web = sub.add_parser("web", parents=[parent], help="the station board, student and teacher pages")
    wsub = web.add_subparsers(dest="web_command", metavar="ACTION", required=True)
    p = wsub.add_parser("serve", parents=[parent],
                        help="serve the pages with the rotation timer until SIGTERM/SIGINT ([web] host, port)")
    p.set_defaults(func=cmd_serve)
