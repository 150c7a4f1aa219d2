"""The mastery service (aiohttp): an xAPI 1.0.3 LRS for lesson content (statements, documents, about,
activities, agents), compact evidence, the mastery API, the cmi5 fetch URL of launches, /healthz and /metrics.

Middlewares, outermost first (edge.mastery.middleware): CORS, JSON errors, the xAPI version header, the
alternate request syntax, auth + version negotiation. Auth: HTTP Basic `class`:`mastery.class_key` for
trusted tools, or a launch credential scoped to one student. With no key configured the service refuses
evidence and mastery reads (503 naming the key) rather than accepting a classroom's data unauthenticated.
Every accepted statement and document is committed to SQLite (WAL, synchronous=FULL) before the response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from edge.config import EdgeConfig
from edge.mastery import api, documents, intake, launches, resources, retrieval
from edge.mastery.lessons import activity_skills as lesson_activity_skills
from edge.mastery.middleware import (
    MAX_BODY,
    alternate_syntax_middleware,
    auth_middleware,
    cors_middleware,
    resource,
    version_header_middleware,
)
from edge.mastery.ops import mastery_health
from edge.mastery.service import MASTERY, Mastery
from edge.serving.aio import add_health, error_middleware, start_site
from edge.serving.lifecycle import serve_async

log = logging.getLogger(__name__)


def make_app(config: EdgeConfig, activity_skills: Mapping[str, str] | None = None) -> web.Application:
    """A fresh app on `config.state_dir / "mastery"`; the store opens on startup and closes on cleanup.

    `activity_skills` maps lesson activity ids to skills (default: the manifests in `mastery.manifests`);
    statements may also name their skill in context (see edge.xapi.vocab).
    """
    health, metrics = mastery_health(config, lambda: None if MASTERY in app and app[MASTERY].writer.running
                                     else "the store's writer is not running")
    app = web.Application(client_max_size=MAX_BODY, middlewares=[
        cors_middleware, error_middleware, metrics.middleware, version_header_middleware,
        alternate_syntax_middleware, auth_middleware])
    skills_map = dict(activity_skills) if activity_skills is not None else lesson_activity_skills(config)
    add_health(app, health)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        app[MASTERY] = await Mastery.open(config, skills_map)
        yield
        await app[MASTERY].close()

    app.cleanup_ctx.append(lifecycle)
    resource(app, "/xapi/statements", {"POST": intake.post_statements, "PUT": intake.put_statement,
                                       "GET": retrieval.get_statements})
    documents.add_routes(app)
    resources.add_routes(app)
    launches.add_routes(app)
    app.router.add_post("/api/v1/evidence", intake.post_evidence)
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
