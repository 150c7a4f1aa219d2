"""Pieces every `edge` sub-command shares: the `--config` option and config loading."""

from __future__ import annotations

import argparse
from typing import TypeAlias

from edge.config import EdgeConfig, load_config

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
