"""The `edge` command: one entry point, sub-commands registered by the package that owns them."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from edge import __version__
from edge.cli_support import common_parent
from edge.exc import EdgeError

# Each module has `register(subparsers, parent)` adding its sub-commands with `set_defaults(func=...)`.
REGISTRARS = (
    "edge.app",
    "edge.rotation.cli",
    "edge.doctor",
    "edge.mastery.cli",
    "content_cache.cli",
    "edge.sync.cli",
    "edge.rotation.groups.cli",
    "edge.fleet.cli",
    "edge.image.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parent = common_parent()
    parser = argparse.ArgumentParser(
        prog="edge",
        description="Classroom edge appliance: rotation timer, lesson cache, mastery, district sync.",
        parents=[parent],
    )
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in REGISTRARS:
        importlib.import_module(name).register(sub, parent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print `edge: error: ...` and return 1 (traceback only with EDGE_DEBUG=1)."""
    debug = os.environ.get("EDGE_DEBUG") == "1"
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except EdgeError as e:
        if debug:
            raise
        print(f"edge: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (`edge rotation preview --json | head`): say so once, and keep the interpreter's
        # final flush of stdout from raising again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("edge: error: the output was closed before everything was written (broken pipe)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """Warnings for people: `edge: warning: ...`, not a Python source location (EDGE_DEBUG=1 shows that)."""
    print(f"edge: warning: {message}", file=file or sys.stderr)
