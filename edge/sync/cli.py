"""`edge sync status`, `edge sync now`, `edge sync roster [IMPORT]`, `edge sync requeue`."""

from __future__ import annotations

import argparse
import asyncio
import json

from edge.cli_support import SubParsers, config_from
from edge.exc import EdgeError


def register(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    """Add `edge sync ...` to the top-level sub-commands."""
    p = sub.add_parser("sync", parents=[parent], help="district sync: LRS outbox status, upload now, roster import")
    ssub = p.add_subparsers(dest="sync_command", metavar="COMMAND", required=True)

    s = ssub.add_parser("status", parents=[parent], help="backlog, oldest unsent, last success and error")
    s.add_argument("--json", action="store_true", help="print the same JSON as GET /api/v1/sync")
    s.set_defaults(func=cmd_status)

    n = ssub.add_parser("now", parents=[parent], help="upload the backlog to the district LRS now")
    n.set_defaults(func=cmd_now)

    r = ssub.add_parser("roster", parents=[parent], help="import a OneRoster 1.1 CSV roster",
                        description="IMPORT is a directory or .zip with orgs.csv, classes.csv, users.csv and "
                        "enrollments.csv, a file:// URL, or the configured district.roster_url (the default).")
    r.add_argument("source", metavar="IMPORT", nargs="?")
    r.set_defaults(func=cmd_roster)

    q = ssub.add_parser("requeue", parents=[parent], help="send quarantined statements again")
    q.add_argument("ids", metavar="ID", nargs="*", help="statement ids (default: all quarantined)")
    q.set_defaults(func=cmd_requeue)


def cmd_status(args: argparse.Namespace) -> int:
    from edge.sync.status import format_status, sync_status

    status = sync_status(config_from(args))
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def cmd_now(args: argparse.Namespace) -> int:
    from edge.sync.outbox import Outbox
    from edge.sync.status import outbox_path
    from edge.sync.uploader import Uploader

    config = config_from(args)
    if not config.district.lrs_url:
        raise EdgeError(f"sync is off: no district.lrs_url in {config.source} (evidence is kept in the outbox)")
    outbox = Outbox(outbox_path(config))

    async def run() -> int:
        up = Uploader(outbox, config.district, max_requests_per_s=config.district.max_requests_per_s or None)
        try:
            result = await up.run_round()
        finally:
            await up.close()
        backlog = outbox.status()["backlog"]
        print(f"sent {result.sent}, quarantined {result.quarantined}, backlog {backlog}")
        if result.error:
            raise EdgeError(f"sync stopped: {result.error}")
        return 0

    try:
        return asyncio.run(run())
    finally:
        outbox.close()


def cmd_roster(args: argparse.Namespace) -> int:
    from edge.sync.roster import import_roster

    config = config_from(args)
    source = args.source or config.district.roster_url
    if not source:
        raise EdgeError(f"no IMPORT given and no district.roster_url in {config.source}")
    roster = import_roster(config, source)
    s = roster.summary()
    print(f"roster imported: {s['classes']} classes, {s['students']} students, {s['teachers']} teachers, "
          f"{s['enrollments']} enrollments")
    return 0


def cmd_requeue(args: argparse.Namespace) -> int:
    from edge.sync.outbox import Outbox
    from edge.sync.status import outbox_path

    outbox = Outbox(outbox_path(config_from(args)))
    try:
        n = outbox.requeue(args.ids or None)
    finally:
        outbox.close()
    print(f"requeued {n} statements")
    return 0
