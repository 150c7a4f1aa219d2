"""The mastery service (aiohttp): xAPI intake from Chromebooks, compact evidence, and the mastery API.

Auth: HTTP Basic, user `class`, password `mastery.class_key`. With no key configured the service refuses
evidence and mastery reads (503 naming the key) rather than accepting a classroom's data unauthenticated.
Every accepted statement is committed to SQLite (WAL, synchronous=FULL) before the response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from edge.config import EdgeConfig
from edge.exc import RequestError
from edge.mastery import api, intake
from edge.mastery.lessons import activity_skills as lesson_activity_skills
from edge.mastery.ops import mastery_health
from edge.mastery.service import MASTERY, Mastery
from edge.mastery.xapi import AUTH_USER, XAPI_VERSION
from edge.serving.aio import Handler, add_health, error_middleware, start_site
from edge.serving.auth import basic_ok
from edge.serving.lifecycle import serve_async

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/healthz", "/metrics"})


@web.middleware
async def xapi_version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /xapi/ answer (errors included) carries the version this LRS speaks."""
    try:
        resp = await handler(request)
    except RequestError as e:
        e.headers.setdefault("X-Experience-API-Version", XAPI_VERSION)
        raise
    if request.path.startswith("/xapi/"):
        resp.headers["X-Experience-API-Version"] = XAPI_VERSION
    return resp


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS:  # /healthz is open; /metrics checks the API token itself
        return await handler(request)
    key = request.app[MASTERY].config.mastery.class_key
    if not key:
        raise RequestError(503, "mastery.class_key is not set in edge.toml: evidence and mastery are refused "
                                "until a class key is configured", key="mastery.class_key")
    if not basic_ok(request.headers.get("Authorization"), AUTH_USER, key):
        raise RequestError(401, "HTTP Basic auth required: user 'class', password = the class key",
                           headers={"WWW-Authenticate": 'Basic realm="classroom-edge mastery"'})
    if request.path.startswith("/xapi/"):
        version = request.headers.get("X-Experience-API-Version", "")
        if not version.startswith("1.0"):
            raise RequestError(400, "X-Experience-API-Version header is required (1.0.x)",
                               key="X-Experience-API-Version")
    return await handler(request)


def make_app(config: EdgeConfig, activity_skills: Mapping[str, str] | None = None) -> web.Application:
    """A fresh app on `config.state_dir / "mastery"`; the store opens on startup and closes on cleanup.

    `activity_skills` maps lesson activity ids to skills (default: the manifests in `mastery.manifests`);
    statements may also name their skill in context (see edge.mastery.xapi).
    """
    health, metrics = mastery_health(config, lambda: None if MASTERY in app and app[MASTERY].writer.running
                                     else "the store's writer is not running")
    app = web.Application(client_max_size=intake.MAX_BODY,
                          middlewares=[error_middleware, metrics.middleware, xapi_version_middleware, auth_middleware])
    skills_map = dict(activity_skills) if activity_skills is not None else lesson_activity_skills(config)
    add_health(app, health)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        app[MASTERY] = await Mastery.open(config, skills_map)
        yield
        await app[MASTERY].close()

    app.cleanup_ctx.append(lifecycle)
    intake.add_routes(app)
    api.add_routes(app)
    return app


async def start_mastery(config: EdgeConfig) -> web.AppRunner:
    """Start the service on mastery.host:port inside a running loop (ListenError if it cannot bind)."""
    runner = await start_site(make_app(config), config.mastery.host, config.mastery.port)
    log.info("mastery service on http://%s:%d", config.mastery.host, config.mastery.port)
    if not config.mastery.class_key:
        log.warning("mastery.class_key is not set: the service refuses evidence until it is")
    return runner


def serve(config: EdgeConfig) -> None:
    """`edge mastery serve`: run in the foreground until SIGTERM or SIGINT."""

    async def start() -> web.AppRunner:
        runner = await start_mastery(config)
        print(f"mastery service on http://{config.mastery.host}:{config.mastery.port}/xapi/ (Ctrl-C to stop)",
              flush=True)
        return runner

    async def stop(runner: web.AppRunner) -> None:
        await runner.cleanup()

    asyncio.run(serve_async(start, stop))
