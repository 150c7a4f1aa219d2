"""`edge cache serve | check | prefetch`: the lesson cache from the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from aiohttp import web

from content_cache.manifest import load_manifest
from content_cache.prefetch import PrefetchState, run_prefetch
from content_cache.server import build_service, start_cache
from content_cache.store import Store
from content_cache.workers import serve_workers
from edge.cli_support import SubParsers, config_from
from edge.exc import EdgeError
from edge.serving.lifecycle import serve_async


def register(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    """Add `edge cache ...` to the edge CLI."""
    cache = sub.add_parser("cache", parents=[parent], help="the lesson cache (serve, check, prefetch)",
                           description="The lesson cache the Chromebooks load lessons from.")
    cs = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    serve = cs.add_parser("serve", parents=[parent], help="run the cache in the foreground until SIGTERM/SIGINT")
    serve.set_defaults(func=cmd_serve)
    check = cs.add_parser("check", parents=[parent], help="find and repair orphan/half files in the cache dir")
    check.add_argument("--verify", action="store_true", help="also re-hash every body against its sha256")
    check.set_defaults(func=cmd_check)
    pre = cs.add_parser("prefetch", parents=[parent], help="download a lesson manifest ahead of class")
    pre.add_argument("manifest", metavar="MANIFEST", type=Path, help="JSON: origin, paths (sha256/size/pin)")
    pre.add_argument("--jobs", type=int, default=4, help="downloads at a time (default 4)")
    pre.set_defaults(func=cmd_prefetch)


def cmd_serve(args: argparse.Namespace) -> int:
    config = config_from(args)
    c = config.cache
    announce = f"lesson cache serving on http://{c.host}:{c.port}/ (Ctrl-C to stop)"
    if c.workers > 1:
        if c.port == 0:
            raise EdgeError("cache.workers > 1 needs a fixed cache.port (each worker binds it with SO_REUSEPORT)")
        serve_workers(config, f"{announce[:-1]}, {c.workers} worker processes)")
        print("lesson cache stopped", flush=True)
        return 0

    async def start() -> web.AppRunner:
        runner = await start_cache(config)
        print(announce, flush=True)
        return runner

    async def stop(runner: web.AppRunner) -> None:
        await runner.cleanup()  # finishes in-flight responses' bookkeeping, closes the index cleanly

    asyncio.run(serve_async(start, stop))
    print("lesson cache stopped", flush=True)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = config_from(args)
    with Store(config.cache_dir) as store:
        # Spare bodies younger than a minute: a running server may be about to index them.
        report = store.check(verify=args.verify, min_orphan_age_s=60.0)
    print(f"{config.cache_dir}: {report.entries} objects ok, {len(report.temp_files)} temp files removed, "
          f"{len(report.orphan_bodies)} orphan bodies removed, {len(report.dropped_entries)} bad entries dropped, "
          f"{report.lock_files} unused lock files removed")
    for line in report.dropped_entries:
        print(f"  dropped {line}")
    return 0


def _bar(state: PrefetchState, width: int = 30) -> str:
    frac = state.done / state.total if state.total else 1.0
    filled = int(width * frac)
    return (f"\r[{'#' * filled}{'-' * (width - filled)}] {state.done}/{state.total} files "
            f"{state.bytes_now / 1e6:8.1f} MB")


def cmd_prefetch(args: argparse.Namespace) -> int:
    config = config_from(args)
    if args.jobs < 1:
        raise EdgeError("--jobs must be at least 1")

    async def run() -> int:
        # Alongside a multi-worker `edge cache serve`, take part in its per-object download locks.
        svc = build_service(config, shared=config.cache.workers > 1)
        try:
            items = load_manifest(args.manifest, svc.origins)
            state_box: list[PrefetchState] = []
            tty = sys.stderr.isatty()

            def on_update(state: PrefetchState) -> None:
                state_box[:] = [state]
                if not tty:
                    last = state.done == state.total
                    if last:
                        print(_bar(state).lstrip("\r"), file=sys.stderr)

            async def ticker() -> None:
                while True:
                    if state_box and tty:
                        print(_bar(state_box[0]), end="", file=sys.stderr, flush=True)
                    await asyncio.sleep(0.2)

            tick = asyncio.create_task(ticker())
            try:
                report = await run_prefetch(svc, items, concurrency=args.jobs, on_update=on_update)
            finally:
                tick.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tick
            if tty and state_box:
                print(_bar(state_box[0]), file=sys.stderr)
            s = report.to_json()
            print(f"prefetch: {s['fetched']} fetched, {s['cached']} already cached, {s['rejected']} rejected, "
                  f"{s['failed']} failed; {s['bytes_fetched'] / 1e6:.1f} MB in {s['seconds']:.1f} s")
            for r in report.results:
                if r.status in ("rejected", "failed"):
                    print(f"  {r.status}: {r.key}: {r.message}")
            if not report.ok:
                raise EdgeError(f"prefetch incomplete: {s['rejected'] + s['failed']} of {len(items)} items not cached")
            return 0
        finally:
            await svc.close()

    return asyncio.run(run())
