"""`edge run`: the whole unit in one foreground process (a laptop demo, or a quick check on a Pi)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import secrets
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from edge.aio_services import AioServices, Starter
from edge.cli_support import config_from
from edge.config import DEFAULTS, EdgeConfig
from edge.demo import DEMO_PLAN
from edge.exc import EdgeError, RotationError
from edge.rotation.plan import Plan, load_plan
from edge.rotation.service import RotationService
from edge.status_line import status_line

log = logging.getLogger(__name__)


def _wait_for_signal(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


ALL_SERVICES = ("rotation", "web", "cache", "mastery")


def _aio_starters(services: Sequence[str]) -> dict[str, Starter]:
    starters: dict[str, Starter] = {}
    if "cache" in services:
        from content_cache.server import start_cache

        starters["cache"] = start_cache
    if "mastery" in services:
        from edge.mastery.service import start_mastery

        starters["mastery"] = start_mastery
    return starters


def run_foreground(config: EdgeConfig, plan: Plan | None = None, services: Sequence[str] = ("rotation",),
                   status_interval_s: float = 0.5) -> int:
    """Run until SIGINT/SIGTERM, printing a live status line (rewritten in place on a terminal)."""
    stop = threading.Event()
    _wait_for_signal(stop)
    rotation = RotationService(config)
    aio = AioServices(config, _aio_starters(services))
    aio.start()
    if "cache" in aio.runners:
        print(f"edge: lesson cache on http://{config.cache.host}:{config.cache.port}/", flush=True)
    if "mastery" in aio.runners:
        print(f"edge: mastery service (xAPI intake) on http://{config.mastery.host}:{config.mastery.port}/xapi/",
              flush=True)
    web = None
    if "web" in services:  # the station board, student and teacher pages (waitress, in a thread)
        from edge.web.server import start_pages

        try:
            web = start_pages(config, rotation)
        except EdgeError:
            aio.stop()
            rotation.stop()
            raise
    print(f"edge: config {config.source}; pins: {rotation.devices.factory_name}"
          f"{' (no GPIO here: mock pins)' if rotation.devices.fallback else ''}; state in {config.state_dir}"
          f"{f'; pages on {web.url}/board /teacher /' if web else ''}", flush=True)
    if plan is not None:
        try:
            rotation.engine.start(plan)
        except RotationError as e:
            print(f"edge: not starting {plan.name!r}: {e}", file=sys.stderr)
    rotation.start()
    tty = sys.stdout.isatty()
    last_key: tuple[object, ...] = ()
    try:
        while not stop.is_set():
            snap = rotation.engine.snapshot()
            line = status_line(snap, rotation.driver.outputs())
            key = (snap.phase, snap.round, snap.quiet, snap.fault)
            if tty:
                sys.stdout.write("\r\x1b[2K" + line)
                sys.stdout.flush()
            elif key != last_key:
                print(line, flush=True)  # in a log, one line per phase change
            last_key = key
            stop.wait(status_interval_s)
    finally:
        if tty:
            sys.stdout.write("\n")
        if web is not None:
            web.close()
        aio.stop()
        rotation.stop()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = config_from(args)
    plan = load_plan(args.plan) if args.plan else None
    if config.source == DEFAULTS:  # the embedded default: a laptop demo
        if not args.no_demo and plan is None:
            plan = DEMO_PLAN
        # one-off secrets so a newcomer can try the teacher page and post evidence; a real unit sets them
        pin = f"{secrets.randbelow(10**6):06d}"
        key = secrets.token_urlsafe(12)
        config = dataclasses.replace(config, web=dataclasses.replace(config.web, teacher_pin=pin),
                                     mastery=dataclasses.replace(config.mastery, class_key=key))
        print(f"edge: demo teacher PIN for this run: {pin}; xAPI Basic auth for this run: class / {key}",
              flush=True)
    return run_foreground(config, plan=plan, services=ALL_SERVICES)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[parent], help="run the whole unit in the foreground (laptop demo)")
    p.add_argument("--plan", metavar="PLAN.toml", help="start this plan now")
    p.add_argument("--no-demo", action="store_true", help="with no config, do not start the demo plan")
    p.set_defaults(func=cmd_run)
