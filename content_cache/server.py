"""The cache as an aiohttp application: `GET /<origin>/<path>` answered from the store (content_cache.responses),
from a growing download (content_cache.streaming) or by starting one; other methods relayed to the origin
(content_cache.relay); plus the admin API and a tiny index.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import time
from collections.abc import AsyncIterator

from aiohttp import web

from content_cache.admin import add_admin_routes
from content_cache.download import Download
from content_cache.entry import Entry
from content_cache.forward import Want
from content_cache.http import satisfies
from content_cache.ops import cache_health
from content_cache.origins import effective_origins, effective_policies
from content_cache.paths import Target, resolve_target
from content_cache.relay import relay
from content_cache.responses import send_body
from content_cache.service import CacheService
from content_cache.streaming import stream
from content_cache.workerstats import PUBLISH_INTERVAL_S
from edge.config import EdgeConfig
from edge.serving.aio import add_health, error_middleware, json_error, start_site

log = logging.getLogger(__name__)

SERVICE: web.AppKey[CacheService] = web.AppKey("content_cache.service", CacheService)
ACCESS_FLUSH_S = 30.0
TARGET_MEMO = 8192  # resolved request targets remembered per process


class Handlers:
    """Request handlers bound to one CacheService."""

    def __init__(self, svc: CacheService) -> None:
        self.svc = svc
        self._targets: dict[str, Target] = {}

    async def index(self, request: web.Request) -> web.Response:
        """A tiny page listing origins, so someone opening the unit in a browser finds the lessons."""
        items = "".join(
            f'<li><a href="/{html.escape(n)}/">{html.escape(n)}</a></li>' for n in sorted(self.svc.origins)
        )
        return web.Response(text=f"<!doctype html><title>Lesson cache</title><h1>Lesson cache</h1><ul>{items}</ul>",
                            content_type="text/html")

    def _target(self, raw: str) -> Target:
        target = self._targets.get(raw)
        if target is None:
            target = resolve_target(raw, self.svc.origins)  # TargetError: the middleware answers it
            # Memoised per process (origins are fixed for the app's life): on a hit, resolving a file://
            # path (realpath: a few syscalls) was a tenth of the request. A bounded map, reset when full.
            if len(self._targets) >= TARGET_MEMO:
                self._targets.clear()
            self._targets[raw] = target
        return target

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """GET and HEAD are answered from storage where RFC 9111 allows; every other method is relayed."""
        if request.method in ("GET", "HEAD"):
            return await self.get(request)
        return await relay(self.svc, request, self._target(request.raw_path))

    async def get(self, request: web.Request) -> web.StreamResponse:
        target = self._target(request.raw_path)
        svc = self.svc
        now = time.time()
        entry = svc.store.in_memory(target.key)
        if (entry is not None and now < entry.fresh_until and "Cache-Control" not in request.headers
                and "Pragma" not in request.headers):
            # The hot path (a fresh response without Vary, a request without cache directives): nothing else to
            # look at, so nothing else is computed.
            return await self.serve_entry(request, entry, "HIT", target, None)
        want = Want.of(request.headers, svc.admin_token)
        entry = svc.store.lookup(target.key, want.headers)
        if entry is not None and now >= entry.fresh_until and svc.locks is not None:
            # Another worker may have refreshed or replaced it: our in-memory mirror can be behind.
            entry = svc.store.reload_url(target.key, want.headers)
        if entry is not None:
            if satisfies(want.directives, entry.fresh_until, entry.age(now), now):
                return await self.serve_entry(request, entry, "HIT", target, want)
            stale_for = now - entry.fresh_until
            if 0 <= stale_for < entry.swr_s and "no-cache" not in want.directives:
                svc.revalidate_in_background(target, want, entry)
                return await self.serve_entry(request, entry, "STALE", target, want)
            if svc.is_down(target.origin) and svc.stale_ok(entry, target.origin, unreachable=True, now=now):
                # The origin cannot be reached: don't make a class wait on it again during the back-off.
                return await self.serve_entry(request, entry, "STALE", target, want)
        if "only-if-cached" in want.directives:
            return json_error(504, f"{target.key!r} is not cached", key="Cache-Control",
                              reason="the request allows only a stored response (only-if-cached)")
        dl, joined = svc.download(target, want, entry)
        return await self.serve_download(request, dl, joined, target, want)

    async def serve_entry(self, request: web.Request, entry: Entry, label: str, target: Target,
                          want: Want | None) -> web.StreamResponse:
        svc = self.svc
        try:
            # Opening a cached body is a metadata lookup; cheaper inline than a thread hop per hit.
            fd = os.open(svc.store.body_path(entry), os.O_RDONLY)
        except FileNotFoundError:
            # Replaced, evicted or invalidated by another process (prefetch CLI, check, another worker):
            # re-read the index, else fetch.
            newer = svc.store.reload(entry.key)
            if newer is not None and newer.body != entry.body:
                return await self.serve_entry(request, newer, label, target, want)
            svc.store.remove(entry.key)
            want = want or Want.of(request.headers, svc.admin_token)
            dl, joined = svc.download(target, want)
            return await self.serve_download(request, dl, joined, target, want)
        key = target.key
        svc.serving[key] += 1
        try:
            return await send_body(svc, request, entry, label, fd)
        finally:
            svc.release_serving(key)

    async def serve_download(self, request: web.Request, dl: Download, joined: bool, target: Target,
                             want: Want) -> web.StreamResponse:
        svc = self.svc
        dl.readers += 1
        svc.serving[target.key] += 1
        try:
            await dl.ready.wait()
            joined = joined or dl.followed  # another worker's download counts as coalesced too
            if joined and not dl.serves(want):
                # The response in flight may not answer this request (private, another Vary variant, ...).
                own, shared = svc.download(target, want, svc.store.lookup(target.key, want.headers), exclude=dl)
                return await self.serve_download(request, own, shared, target, want)
            if dl.outcome == "error":
                assert dl.error is not None
                unreachable = dl.error.kind in ("down", "stall", "reset")
                current = svc.store.lookup(target.key, want.headers)
                if current is not None and svc.stale_ok(current, target.origin, unreachable=unreachable):
                    return await self.serve_entry(request, current, "STALE", target, want)
                if unreachable:
                    return json_error(504, f"upstream {target.origin!r} is unavailable and {target.path!r} is not "
                                      "cached", reason=dl.error.message)
                return json_error(502, f"upstream {target.origin!r} failed for {target.path!r}",
                                  reason=dl.error.message)
            if dl.outcome in ("not_modified", "use_stale"):
                assert dl.entry is not None
                label = "HIT" if dl.outcome == "not_modified" else "STALE"
                return await self.serve_entry(request, dl.entry, label, target, want)
            label = "COALESCED" if joined else "MISS"
            if joined:
                svc.stats.coalesced += 1
            else:
                svc.stats.misses += 1
            if dl.ok and dl.entry is not None and svc.store.get(dl.entry.key) is dl.entry:
                fd = os.open(svc.store.body_path(dl.entry), os.O_RDONLY)
                return await send_body(svc, request, dl.entry, label, fd, count=False)
            return await stream(svc, request, dl, label, target)
        finally:
            dl.release_reader()
            svc.release_serving(target.key)


def build_service(config: EdgeConfig, *, shared: bool = False, worker: int = 0) -> CacheService:
    """The cache's service; `shared` when several worker processes serve the same cache dir."""
    c = config.cache
    return CacheService.create(
        config.cache_dir, effective_origins(config), effective_policies(config), max_bytes=c.max_bytes,
        backoff_s=c.backoff_s, stall_timeout_s=c.stall_timeout_s, admin_token=c.admin_token, shared=shared,
        worker=worker,
    )


def make_app(config: EdgeConfig, *, worker: int | None = None) -> web.Application:
    """The cache as an aiohttp application (a fresh service per app: tests build one per test).

    `worker` (0..N-1) makes it one of N worker processes sharing the cache dir: downloads coordinate
    through per-object locks, and the startup repair is left to the parent (which runs it before any
    worker starts: a worker that restarts must not remove another worker's just-renamed body).
    """
    svc = build_service(config, shared=worker is not None, worker=worker or 0)
    if worker is None:
        svc.store.check()  # clear temp files of dead writers (a crash mid-download) before serving
    else:
        svc.stats_dir = svc.store.dir / "stats"  # the other workers sum our counters into their stats
    app = web.Application(middlewares=[error_middleware])
    app[SERVICE] = svc
    h = Handlers(svc)
    add_admin_routes(app, svc, config.cache.admin_token)
    add_health(app, cache_health(config, svc))
    app.router.add_get("/", h.index)
    app.router.add_route("*", "/{tail:.+}", h.dispatch)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        async def flush() -> None:
            while True:
                await asyncio.sleep(ACCESS_FLUSH_S)
                svc.store.flush_access()

        async def publish() -> None:
            while True:
                with contextlib.suppress(OSError):  # advisory figures: a full disk must not stop serving
                    svc.publish_stats()
                await asyncio.sleep(PUBLISH_INTERVAL_S)

        tasks = [asyncio.create_task(flush())]
        if svc.stats_dir is not None:
            tasks.append(asyncio.create_task(publish()))
        yield
        for task in tasks:
            task.cancel()
        await svc.close()
        with contextlib.suppress(OSError):
            svc.publish_stats(force=True)  # final figures (the file is ignored once our pid is gone)

    app.cleanup_ctx.append(lifecycle)
    return app


async def start_cache(config: EdgeConfig, *, worker: int | None = None) -> web.AppRunner:
    """Start the cache on config.cache.host/port inside a running loop (ListenError if it cannot bind);
    stop it with `runner.cleanup()`. Worker processes join the port with SO_REUSEPORT."""
    c = config.cache
    runner = await start_site(make_app(config, worker=worker), c.host, c.port, reuse_port=worker is not None)
    log.info("lesson cache on http://%s:%d/ (dir %s)", c.host, c.port, config.cache_dir)
    return runner
