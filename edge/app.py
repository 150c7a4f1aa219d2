"""`edge run`: the whole unit in one foreground process (a laptop demo, or a quick check on a Pi).

In production each service is its own systemd unit (`edge rotation serve`, `edge cache serve`, `edge mastery
serve`); here the aiohttp ones share a private event loop in a thread and the pages run in waitress threads,
so a laptop demo is one command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import secrets
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

from aiohttp import web

from edge.cli_support import SubParsers, config_from
from edge.config import DEFAULTS, EdgeConfig
from edge.exc import ListenError, PlanError
from edge.rotation.console import run_console
from edge.rotation.demo import DEMO_PLAN
from edge.rotation.plan import Plan, load_plan
from edge.rotation.service import RotationService
from edge.rotation.store import PlanStore
from edge.serving.lifecycle import stop_on_signal

log = logging.getLogger(__name__)
Starter = Callable[[EdgeConfig], Coroutine[Any, Any, web.AppRunner]]
ALL_SERVICES = ("rotation", "web", "cache", "mastery")


class AioServices:
    """The given aiohttp services on one private event loop in a background thread (a context manager)."""

    def __init__(self, config: EdgeConfig, starters: dict[str, Starter]) -> None:
        self.config = config
        self.starters = starters
        self.loop = asyncio.new_event_loop()
        self.runners: dict[str, web.AppRunner] = {}
        self.errors: dict[str, str] = {}
        self._thread = threading.Thread(target=self.loop.run_forever, name="aio-services", daemon=True)

    def __enter__(self) -> AioServices:
        self._thread.start()
        for name, starter in self.starters.items():
            try:
                self.runners[name] = asyncio.run_coroutine_threadsafe(starter(self.config), self.loop).result(30)
            except ListenError as e:  # e.g. the port is taken: the other services still run
                self.errors[name] = str(e)
                log.error("%s did not start: %s", name, e)
        return self

    def __exit__(self, *exc_info: object) -> None:
        async def cleanup() -> None:
            for runner in self.runners.values():
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def _aio_starters(services: Sequence[str]) -> dict[str, Starter]:
    starters: dict[str, Starter] = {}
    if "cache" in services:
        from content_cache.server import start_cache

        starters["cache"] = start_cache
    if "mastery" in services:
        from edge.mastery.app import start_mastery

        starters["mastery"] = start_mastery
    return starters


@contextlib.contextmanager
def _pages(config: EdgeConfig, rotation: RotationService, wanted: bool) -> Iterator[str]:
    """The station board, student and teacher pages in waitress threads; yields their URL ("" when off)."""
    if not wanted:
        yield ""
        return
    from edge.rotation.web.server import start_pages

    with start_pages(config, rotation) as server:
        yield server.url


def run_foreground(config: EdgeConfig, plan: Plan | None = None, services: Sequence[str] = ALL_SERVICES) -> int:
    """Run until SIGINT/SIGTERM, printing a live status line (rewritten in place on a terminal)."""
    with stop_on_signal() as stopping, AioServices(config, _aio_starters(services)) as aio, \
            RotationService(config) as rotation, _pages(config, rotation, "web" in services) as url:
        if "cache" in aio.runners:
            print(f"edge: lesson cache on http://{config.cache.host}:{config.cache.port}/", flush=True)
        if "mastery" in aio.runners:
            print(f"edge: mastery service (xAPI intake) on http://{config.mastery.host}:{config.mastery.port}/xapi/",
                  flush=True)
        print(f"edge: config {config.source}; pins: {rotation.devices.factory_name}"
              f"{' (no GPIO here: mock pins)' if rotation.devices.fallback else ''}; state in {config.state_dir}"
              f"{f'; pages on {url}/board /teacher /' if url else ''}", flush=True)
        run_console(rotation, plan, stopping)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = config_from(args)
    plan = load_plan(args.plan) if args.plan else None
    if config.source == DEFAULTS:  # the embedded default: a laptop demo
        if not args.no_demo and plan is None:
            plan = DEMO_PLAN
            # saved too, so the teacher page can start it again after "End rotation"
            with contextlib.suppress(PlanError):  # already saved (or a plan of the teacher's uses that name)
                PlanStore(config.plans_dir).save(DEMO_PLAN, replace=False)
        # one-off secrets so a newcomer can try the teacher page and post evidence; a real unit sets them
        pin = f"{secrets.randbelow(10**6):06d}"
        key = secrets.token_urlsafe(12)
        config = dataclasses.replace(config, web=dataclasses.replace(config.web, teacher_pin=pin),
                                     mastery=dataclasses.replace(config.mastery, class_key=key))
        print(f"edge: demo teacher PIN for this run: {pin}; xAPI Basic auth for this run: class / {key}",
              flush=True)
    return run_foreground(config, plan=plan, services=ALL_SERVICES)


def register(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[parent], help="run the whole unit in the foreground (laptop demo)")
    p.add_argument("--plan", metavar="PLAN.toml", help="start this plan now")
    p.add_argument("--no-demo", action="store_true", help="with no config, do not start the demo plan")
    p.set_defaults(func=cmd_run)
