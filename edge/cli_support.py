"""Pieces every `edge` sub-command shares: the `--config` option, config loading, and `--out FILE` output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TypeAlias

from edge.config import EdgeConfig, load_config
from edge.fsutil import atomic_write

# What `register(sub, parent)` of each package receives: the top-level sub-command table.
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def common_parent() -> argparse.ArgumentParser:
    """A parent parser giving every sub-command `--config PATH` (also accepted before the sub-command)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS,
        help="edge.toml to use (default: $EDGE_CONFIG, else built-in defaults)",
    )
    return parent


def config_from(args: argparse.Namespace) -> EdgeConfig:
    """The validated config named by --config / $EDGE_CONFIG (raises ConfigError)."""
    return load_config(getattr(args, "config", None))


def emit(text: str, out: str | None) -> None:
    """A command's output: to `out` written atomically (a half-written file never replaces a good one), or to
    stdout when no file is named."""
    if out:
        atomic_write(Path(out), text.encode())
    else:
        sys.stdout.write(text)
