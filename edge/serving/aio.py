"""aiohttp services on the serving layer: bind (or a clean ListenError), the JSON error middleware.

    runner = await start_site(make_app(config), host, port)        # ListenError if the port is taken
    await serve_async(lambda: start_site(...), lambda r: r.cleanup())

Every handler may raise RequestError; the middleware answers it, and aiohttp's own 404/405/413, in the one
JSON error shape (405 with its Allow header). Nothing but a bug gives a 500, and that one is JSON too.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from edge.exc import ListenError, RequestError
from edge.serving import jsontext
from edge.serving.errors import error_body, request_error_body
from edge.serving.health import CONTENT_TYPE, Health

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer that is strict JSON (edge.serving.jsontext: a NaN or infinity is a bug, never sent)."""
    return web.json_response(data, status=status, headers=dict(headers or {}), dumps=jsontext.dumps)


def json_error(status: int, message: str, *, key: str | None = None, reason: str | None = None,
               headers: Mapping[str, str] | None = None) -> web.Response:
    return json_response(error_body(status, message, key=key, reason=reason), status=status,
                         headers=dict(headers or {}))


def error_response(e: RequestError, headers: Mapping[str, str] | None = None) -> web.Response:
    return json_response(request_error_body(e), status=e.status, headers={**e.headers, **(headers or {})})


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RequestError as e:
        return error_response(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise  # redirects and the like pass through
        keep = {k: v for k, v in e.headers.items() if k in ("Allow", "WWW-Authenticate", "Retry-After")}
        message = e.reason
        if e.status == 405:
            message = f"method {request.method} is not allowed here"
        elif e.status == 413 and (m := re.search(r"Maximum request body size (\d+)", e.text or "")):
            message = f"request body is larger than {m[1]} bytes"
        elif e.status == 404:
            message = f"no such page or API: {request.path}"
        return json_error(e.status, message, headers=keep)


def bound_port(runner: web.AppRunner) -> int:
    """The port a runner's (first) site listens on: tests bind port 0."""
    for site in runner.sites:
        server: Any = getattr(site, "_server", None)
        if server is not None and getattr(server, "sockets", None):
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("the runner has no bound site")


def listen(host: str, port: int, *, reuse_port: bool = False, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket on host:port (the first address the name resolves to); ListenError if not."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ListenError(host, port, e.strerror or str(e)) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise ListenError(host, port, e.strerror or str(e)) from None
    sock.setblocking(False)
    return sock


async def start_site(app: web.Application, host: str, port: int, *, reuse_port: bool = False,
                     backlog: int = 1024, sock: socket.socket | None = None,
                     **runner_kwargs: Any) -> web.AppRunner:
    """Listen on host:port (or on an inherited socket) first, then start `app` on it: a taken port is a
    ListenError before any store opens or any background task starts.

    Access logs are off: request lines carry student ids (query strings, paths).
    """
    if sock is None:
        sock = listen(host, port, reuse_port=reuse_port, backlog=backlog)
    runner = web.AppRunner(app, access_log=None, **runner_kwargs)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    return runner


HEALTH: web.AppKey[Health] = web.AppKey("edge.health", Health)


async def _healthz(request: web.Request) -> web.StreamResponse:
    status, body = request.app[HEALTH].report()
    return json_response(body, status=status, headers={"Cache-Control": "no-store"})


async def _metrics(request: web.Request) -> web.StreamResponse:
    health = request.app[HEALTH]
    if not health.metrics_allowed(request.headers.get("Authorization")):
        raise RequestError(401, "metrics need Authorization: Bearer <the api_token>", key="Authorization",
                           headers={"WWW-Authenticate": 'Bearer realm="classroom-edge metrics"'})
    return web.Response(body=health.exposition(), headers={"Content-Type": CONTENT_TYPE})


def add_health(app: web.Application, health: Health) -> None:
    """GET /healthz and GET /metrics on `app` (edge.serving.health)."""
    app[HEALTH] = health
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
