"""`edge fleet ...` (discover, serve, inventory, forget), `edge self-update WHEEL` and `edge config check FILE`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from edge.cli_support import config_from, emit
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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
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


def cmd_inventory(args: argparse.Namespace) -> int:

    from edge.fleet import inventory as inv

    if args.from_collector:
        members = inv.fetch_collector(args.from_collector)
        source = f"--from-collector {args.from_collector}"
    else:
        from edge.fleet.discover import discover

        try:
            units = asyncio.run(discover(args.timeout, health=False))
        except OSError as e:
            raise EdgeError(f"cannot browse mDNS on this host: {e}") from e
        members = inv.from_discovery(units)
        source = "--from-discovery"
    text = inv.render(members, args.format, f"{source} --format {args.format}")
    emit(text, args.out)
    if args.out:
        print(f"{args.out}: {len(members)} units", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from edge.fleet.collector import serve

    serve(config_from(args))
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


def cmd_self_update(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from edge.fleet.selfupdate import UpdateOptions, Updater, health_urls

    if args.status:
        print(json.dumps(Updater(UpdateOptions(prefix=Path(args.prefix))).status(), indent=2))
        return 0
    urls = args.health_url or health_urls(config_from(args))
    options = UpdateOptions(prefix=Path(args.prefix), restart_command=shlex.split(args.restart_command),
                            health_urls=urls, health_timeout_s=args.health_timeout, keep=args.keep,
                            pip_args=args.pip_arg or None)
    updater = Updater(options, say=lambda line: print(f"edge self-update: {line}", flush=True))
    if args.recover:
        with updater.r.lock():
            done = updater.recover(restart=not args.no_restart)
        print(f"edge self-update: {done or 'nothing to recover'}")
        return 0
    if not args.wheel:
        raise EdgeError("give the release WHEEL to install (or --recover / --status)")
    result = updater.update(Path(args.wheel))
    print(f"edge self-update: {result}")
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
    d.add_argument("--count", type=_count, default=None, metavar="N", help="stop as soon as N units are found")
    d.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    d.add_argument("--no-health", action="store_true", help="do not ask the units' /healthz")
    d.set_defaults(func=cmd_discover)

    i = fsub.add_parser("inventory", parents=[parent],
                        help="the units as an Ansible inventory or Prometheus file_sd targets")
    src = i.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-discovery", action="store_true", help="the units mDNS finds on this LAN")
    src.add_argument("--from-collector", metavar="URL", help="every unit the district collector knows")
    i.add_argument("--format", choices=("ansible", "prometheus"), default="ansible",
                   help="ansible: YAML inventory grouped by school; prometheus: file_sd JSON for /metrics")
    i.add_argument("--timeout", type=_positive_float, default=3.0, metavar="S", help="discovery listening time")
    i.add_argument("--out", metavar="FILE", help="write here (atomically) instead of stdout")
    i.set_defaults(func=cmd_inventory)

    s = fsub.add_parser("serve", parents=[parent],
                        help="run the district collector: heartbeats in, the fleet page and API out ([fleet])")
    s.set_defaults(func=cmd_serve)

    f = fsub.add_parser("forget", parents=[parent], help="drop a unit from the collector's store (e.g. it moved)")
    f.add_argument("unit_id", metavar="UNIT_ID")
    f.set_defaults(func=cmd_forget)

    from edge.fleet.selfupdate import DEFAULT_PREFIX, DEFAULT_RESTART

    u = sub.add_parser(
        "self-update", parents=[parent], help="install a release wheel, switch, restart, verify, roll back if sick",
        description="Install WHEEL into <prefix>/releases/<version> (a venv), point <prefix>/current at it, "
        "run the restart command and wait for every service's /healthz; if they are not healthy within the "
        "timeout, switch back. The last two releases are kept.")
    u.add_argument("wheel", metavar="WHEEL", nargs="?", help="classroom_edge-<version>-...whl")
    u.add_argument("--prefix", default=str(DEFAULT_PREFIX), help=f"install root (default {DEFAULT_PREFIX})")
    u.add_argument("--restart-command", default=DEFAULT_RESTART, metavar="CMD",
                   help="how to restart the services (default: systemctl restart of the three units)")
    u.add_argument("--health-url", action="append", metavar="URL",
                   help="a URL that must answer {\"status\": \"ok\"} (repeat; default: /healthz of the web, "
                   "cache and mastery ports in the config)")
    u.add_argument("--health-timeout", type=_positive_float, default=120.0, metavar="S",
                   help="how long the services have to become healthy (default 120 s)")
    u.add_argument("--keep", type=int, default=2, metavar="N", help="releases to keep (default 2)")
    u.add_argument("--pip-arg", action="append", metavar="ARG",
                   help="pip install option (repeat); default: --no-index --find-links <the wheel's directory>")
    u.add_argument("--recover", action="store_true", help="only finish an interrupted update (roll back)")
    u.add_argument("--no-restart", action="store_true", help="with --recover: switch back without restarting")
    u.add_argument("--status", action="store_true", help="print the releases, current and any interrupted update")
    u.set_defaults(func=cmd_self_update)

    c = sub.add_parser("config", parents=[parent], help="check an edge.toml")
    csub = c.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    chk = csub.add_parser("check", parents=[parent], help="validate FILE like the services do at start (exit 1 if not)")
    chk.add_argument("file", metavar="FILE")
    chk.set_defaults(func=cmd_config_check)

