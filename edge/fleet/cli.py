"""`edge fleet ...` (discover, serve, inventory, forget), `edge self-update WHEEL` and `edge config check FILE`."""

from __future__ import annotations

import argparse
import asyncio
import json

from edge.cli_support import config_from
from edge.config import load_config
from edge.exc import EdgeError


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be greater than 0 and at most 3600")
    return value


def cmd_discover(args: argparse.Namespace) -> int:
    from edge.fleet.discover import discover, format_table

    try:
        units = asyncio.run(discover(args.timeout, count=args.count, health=not args.no_health))
    except OSError as e:
        raise EdgeError(f"cannot browse mDNS on this host: {e}") from e
    if args.json:
        print(json.dumps([u.to_json() for u in units], indent=2))
    else:
        print(format_table(units))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from edge.fleet.collector import serve_forever

    config = config_from(args)
    print(f"edge: fleet collector on http://{config.fleet.host}:{config.fleet.port}/ "
          f"({len(config.fleet.tokens)} school tokens)", flush=True)
    serve_forever(config)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge.fleet.store import FleetStore

    config = config_from(args)
    path = Path(config.fleet.db) if config.fleet.db else config.state_dir / "fleet" / "fleet.sqlite3"
    if not path.exists():
        raise EdgeError(f"no fleet store at {path} (fleet.db)")
    store = FleetStore(path, config.fleet.max_units)
    try:
        if not store.forget(args.unit_id):
            raise EdgeError(f"no unit {args.unit_id!r} in {path}")
    finally:
        store.close()
    print(f"forgot unit {args.unit_id} (its next heartbeat registers it again)")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)  # raises ConfigError naming the file, key and reason
    print(f"{cfg.source}: ok")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    fleet = sub.add_parser("fleet", parents=[parent], help="find, watch and update the units of a district")
    fsub = fleet.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)

    d = fsub.add_parser("discover", parents=[parent], help="list the units on this LAN (mDNS) with their /healthz")
    d.add_argument("--timeout", type=_positive_float, default=3.0, metavar="S",
                   help="how long to listen for units (default 3 s)")
    d.add_argument("--count", type=int, default=None, metavar="N", help="stop as soon as N units are found")
    d.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    d.add_argument("--no-health", action="store_true", help="do not ask the units' /healthz")
    d.set_defaults(func=cmd_discover)

    s = fsub.add_parser("serve", parents=[parent],
                        help="run the district collector: heartbeats in, the fleet page and API out ([fleet])")
    s.set_defaults(func=cmd_serve)

    f = fsub.add_parser("forget", parents=[parent], help="drop a unit from the collector's store (e.g. it moved)")
    f.add_argument("unit_id", metavar="UNIT_ID")
    f.set_defaults(func=cmd_forget)

    c = sub.add_parser("config", parents=[parent], help="check an edge.toml")
    csub = c.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    chk = csub.add_parser("check", parents=[parent], help="validate FILE like the services do at start (exit 1 if not)")
    chk.add_argument("file", metavar="FILE")
    chk.set_defaults(func=cmd_config_check)

