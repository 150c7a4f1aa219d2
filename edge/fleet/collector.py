"""The district collector (`edge fleet serve`, on a district server): receives the units' heartbeats, keeps the
last state of every unit (edge.fleet.store) and serves the fleet page (edge.fleet.page) and its JSON API
(OpenAPI 3.1 at /api/v1/openapi.json).

- `POST /api/v1/heartbeat`: the document edge/sync/heartbeat.py sends, with `Authorization: Bearer <token>`
  where the token is the one `[fleet.tokens]` gives the unit's school. 204 once it is on disk.
- `GET /api/v1/units` (filter/sort like the page), `GET /api/v1/units/{id}`, `GET /api/v1/schools`.
- `GET /metrics` the fleet for Prometheus (edge.fleet.metrics); `GET /healthz` the collector's own health.
- Errors are the one JSON shape (edge.serving.errors): 4xx for anything a client did, never a traceback.
Bounded: request bodies (16 KiB), every string field, the number of faults, the number of units.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from edge import __version__
from edge.config import EdgeConfig
from edge.exc import RequestError
from edge.fleet.heartbeats import Query, iso, parse_heartbeat, school_summary
from edge.fleet.metrics import Exposition
from edge.fleet.page import get_page, templates
from edge.fleet.service import COLLECTOR, Clock, Collector
from edge.fleet.store import ACCEPTED, FULL, OTHER_SCHOOL, FleetStore, Heartbeat
from edge.serving import jsontext
from edge.serving.aio import Handler, error_middleware, json_error, json_response, start_site
from edge.serving.auth import bearer
from edge.serving.groupcommit import GroupCommit
from edge.serving.lifecycle import serve_async

log = logging.getLogger(__name__)
MAX_BODY = 16 * 1024
HERE = Path(__file__).resolve().parent


@web.middleware
async def store_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A failure of our own store is a 503 naming the store, never a traceback."""
    try:
        return await handler(request)
    except (sqlite3.Error, OSError) as e:
        log.error("fleet store unavailable: %s", e)
        return json_error(503, "the fleet store is unavailable; try again later")


async def post_heartbeat(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    token = bearer(request.headers.get("Authorization"))
    school = c.school_of(token) if token else None
    if school is None:
        c.refused += 1
        raise RequestError(401, "a district token is required: Authorization: Bearer <the school's token>",
                           key="Authorization", headers={"WWW-Authenticate": 'Bearer realm="classroom-edge fleet"'})
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    try:
        doc = parse_heartbeat(jsontext.loads(await request.read()))
    except ValueError as e:
        c.refused += 1
        raise RequestError(400, f"body: {e}", key="body", reason=str(e)) from None
    except RequestError:
        c.refused += 1
        raise
    unit = doc["unit"]
    if unit["school"] != school:
        c.refused += 1
        raise RequestError(403, f"this token is {school!r}'s; the heartbeat names school {unit['school']!r}",
                           key="unit.school")
    hb = Heartbeat(unit["id"], school, unit["room"], unit["hostname"], doc["version"], request.remote,
                   c.now(), doc)
    await c.writer.submit(hb)
    if hb.outcome == OTHER_SCHOOL:
        c.refused += 1
        raise RequestError(409, f"unit id {hb.unit_id!r} belongs to school {hb.owner_school!r} "
                                "(`edge fleet forget` it on the collector if the unit moved)", key="unit.id")
    if hb.outcome == FULL:
        c.refused += 1
        raise RequestError(507, f"the collector keeps at most {c.store.max_units} units (fleet.max_units)")
    assert hb.outcome == ACCEPTED
    c.received += 1
    return web.Response(status=204)


async def get_units(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    query = Query.from_request(request.query)
    views = await c.views()
    return json_response({"generated_at": iso(c.now()), "offline_minutes": c.config.fleet.offline_minutes,
                          "total": len(views), "units": query.apply(views)})


async def get_unit(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    uid = request.match_info["unit_id"]
    for view in await c.views():
        if view["id"] == uid:
            return json_response(view)
    raise RequestError(404, f"no unit {uid!r} has reported", key="unit_id")


async def get_schools(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    return json_response({"generated_at": iso(c.now()), "schools": school_summary(await c.views())})


async def get_openapi(request: web.Request) -> web.StreamResponse:
    from edge.fleet.openapi import spec

    return json_response(spec())


async def get_healthz(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    try:
        await asyncio.get_running_loop().run_in_executor(
            c.read_executor, lambda: c.reader.execute("SELECT count(*) FROM units").fetchone())
    except sqlite3.Error as e:
        return json_response({"status": "failing", "error": f"fleet store: {e}"}, status=503)
    writer_ok = c.writer.running
    return json_response({"status": "ok" if writer_ok else "failing", "service": "fleet", "version": __version__,
                          "units": len(c.store.schools)}, status=200 if writer_ok else 503)


async def get_metrics(request: web.Request) -> web.StreamResponse:
    c = request.app[COLLECTOR]
    assert c.metrics is not None
    body = await c.metrics.render(c.views)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(config: EdgeConfig, *, now: Clock = time.time, max_group: int = 1000) -> web.Application:
    """A fresh collector on `fleet.db` (default <state_dir>/fleet/fleet.sqlite3)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[error_middleware, store_errors])
    path = Path(config.fleet.db) if config.fleet.db else config.state_dir / "fleet" / "fleet.sqlite3"

    async def startup(app: web.Application) -> None:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-store")
        loop = asyncio.get_running_loop()
        store = await loop.run_in_executor(executor, FleetStore, path, config.fleet.max_units)
        token_schools = {hashlib.sha256(t.encode()).digest(): s for s, t in config.fleet.tokens.items()}
        if not token_schools:
            log.warning("no [fleet.tokens]: every heartbeat will be refused (401) until schools have tokens")
        writer: GroupCommit[Heartbeat] = GroupCommit(store.write_group, executor, max_group=max_group,
                                                     name="fleet-writer")
        c = Collector(config, store, store.reader(), writer,
                      ThreadPoolExecutor(max_workers=1, thread_name_prefix="fleet-read"), now, token_schools,
                      templates())
        writer.start()
        c.metrics = Exposition(lambda: {"received": c.received, "refused": c.refused})
        app[COLLECTOR] = c

    async def cleanup(app: web.Application) -> None:
        c = app[COLLECTOR]
        await c.writer.stop()
        c.read_executor.submit(c.reader.close).result()
        c.read_executor.shutdown(wait=True)
        await c.writer.run(c.store.close)
        c.writer.executor.shutdown(wait=True)

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_get("/", get_page)
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_post("/api/v1/heartbeat", post_heartbeat)
    app.router.add_get("/api/v1/units", get_units)
    app.router.add_get("/api/v1/units/{unit_id}", get_unit)
    app.router.add_get("/api/v1/schools", get_schools)
    app.router.add_get("/api/v1/openapi.json", get_openapi)
    app.router.add_static("/static/", HERE / "static", append_version=False)
    return app


async def start_collector(config: EdgeConfig, *, now: Clock = time.time, max_group: int = 1000) -> web.AppRunner:
    """Listen on fleet.host:port (ListenError if it cannot), then start the collector. `max_group`: heartbeats
    per transaction (1 = one fsync each, the benchmark's peer)."""
    runner = await start_site(make_app(config, now=now, max_group=max_group), config.fleet.host, config.fleet.port)
    log.info("fleet collector on http://%s:%d/ (%d school tokens)", config.fleet.host, config.fleet.port,
             len(config.fleet.tokens))
    return runner


def serve(config: EdgeConfig, *, max_group: int = 1000) -> None:
    """`edge fleet serve`: until SIGTERM/SIGINT, with READY/WATCHDOG for systemd."""

    async def start() -> web.AppRunner:
        runner = await start_collector(config, max_group=max_group)
        print(f"edge: fleet collector on http://{config.fleet.host}:{config.fleet.port}/ "
              f"({len(config.fleet.tokens)} school tokens)", flush=True)
        return runner

    async def stop(runner: web.AppRunner) -> None:
        await runner.cleanup()

    asyncio.run(serve_async(start, stop))
