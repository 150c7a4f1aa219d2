"""The xAPI endpoint's request pipeline, outermost first: CORS (preflights answered before auth), the JSON
errors, the version header, the alternate request syntax, then authentication and version negotiation.

Who may call: the class key (HTTP Basic `class`:`mastery.class_key`) for trusted tools, or a launch
credential (Basic `launch`:<token>, edge.launch) scoped to one student, which handlers check with
`principal(request)`. /xapi/about, the cmi5 fetch URL and /healthz need neither (/metrics checks the metrics token).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from edge import launch
from edge.exc import RequestError
from edge.mastery.service import MASTERY
from edge.serving.aio import Handler, json_response
from edge.serving.auth import basic, basic_ok
from edge.xapi import AUTH_USER, XAPI_VERSION
from edge.xapi.formats import is_version

MAX_BODY = 1024 * 1024  # bytes per request (statements, documents, an alternate-syntax form)
ALLOW_HEADERS = "Authorization, Content-Type, X-Experience-API-Version, If-Match, If-None-Match"
ALLOW_METHODS = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
EXPOSE_HEADERS = "ETag, Last-Modified, X-Experience-API-Consistent-Through, X-Experience-API-Version"
CORS_PATHS = ("/xapi/", "/launch/")
NO_AUTH = ("/xapi/about", "/launch/fetch", "/healthz", "/metrics", "/api/v1/openapi.json")  # /metrics: own token
ALT_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
ALT_HEADERS = {"authorization": "Authorization", "x-experience-api-version": "X-Experience-API-Version",
               "content-type": "Content-Type", "content-length": "Content-Length", "if-match": "If-Match",
               "if-none-match": "If-None-Match"}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the class key (launch None), or one student's launch."""

    launch: launch.Claims | None = None

    @property
    def trusted(self) -> bool:
        return self.launch is None


BODY = web.RequestKey("xapi_body", bytes)  # the body an alternate-syntax request carried in its `content` field
PRINCIPAL = web.RequestKey("xapi_principal", Principal)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL] if PRINCIPAL in request else Principal()


async def read_body(request: web.Request) -> bytes:
    """The request body (or the alternate syntax's `content`), at most MAX_BODY bytes (else 413)."""
    if BODY in request:
        return request[BODY]
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise RequestError(413, f"request body is larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    total = 0
    while chunk := await request.content.read(64 * 1024):
        total += len(chunk)
        if total > MAX_BODY:
            raise RequestError(413, f"request body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# -- CORS ------------------------------------------------------------------------------------------------------
def origin_allowed(request: web.Request, origin: str) -> bool:
    """The lesson cache on this unit (the host the request came to, the cache's port) or a configured origin."""
    config = request.app[MASTERY].config
    allowed = config.mastery.cors_origins
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    here = urlsplit("//" + request.host).hostname
    return parts.scheme in ("http", "https") and parts.hostname == here and port == config.cache.port


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Preflights are answered here, before authentication (a browser never sends credentials in one)."""
    origin = request.headers.get("Origin")
    if not request.path.startswith(CORS_PATHS):
        return await handler(request)
    allowed = origin is not None and origin_allowed(request, origin)
    resp: web.StreamResponse
    if request.method == "OPTIONS":
        if origin is not None and not allowed:
            return json_response({"error": f"origin {origin} may not call this LRS (mastery.cors_origins)",
                                  "status": 403}, status=403)
        resp = web.Response(status=204, headers={"Allow": ALLOW_METHODS})
        if allowed:
            resp.headers.update({"Access-Control-Allow-Methods": ALLOW_METHODS,
                                 "Access-Control-Allow-Headers": ALLOW_HEADERS,
                                 "Access-Control-Max-Age": "600"})
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                resp.headers["Access-Control-Allow-Private-Network"] = "true"
    else:
        resp = await handler(request)
    if allowed:
        resp.headers["Access-Control-Allow-Origin"] = str(origin)
        resp.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    resp.headers.add("Vary", "Origin")
    return resp


# -- version header, alternate syntax, auth -----------------------------------------------------------------------
@web.middleware
async def version_header_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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
async def alternate_syntax_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """`POST ...?method=PUT` with a form of headers, parameters and `content` (xAPI Communication 1.3): what
    browsers without CORS preflights, and TinCanJS on long URLs, send. Replayed as the request it stands for."""
    if "method" not in request.query or not request.path.startswith("/xapi/"):
        return await handler(request)
    if request.method != "POST":
        raise RequestError(400, "the alternate request syntax is a POST", key="method")
    if set(request.query) != {"method"}:
        raise RequestError(400, "the alternate request syntax takes no query parameters but method", key="method")
    method = request.query["method"].upper()
    if method not in ALT_METHODS:
        raise RequestError(400, f"method must be one of {', '.join(ALT_METHODS)}", key="method")
    if request.content_type != "application/x-www-form-urlencoded":
        raise RequestError(400, "the alternate request syntax sends a form (application/x-www-form-urlencoded)",
                           key="Content-Type")
    form = _form(await read_body(request))
    headers = CIMultiDict(request.headers)
    params: dict[str, str] = {}
    content: bytes | None = None
    for name, value in form.items():
        header = ALT_HEADERS.get(name.lower())
        if header is not None:
            headers[header] = value
        elif name == "content":
            content = value.encode()
        else:
            params[name] = value
    if content is None:
        if method in ("PUT", "POST"):
            raise RequestError(400, "the alternate request syntax needs a content field for PUT and POST",
                               key="content")
        content = b""
    if "content-type" not in {n.lower() for n in form}:  # the form's own type is not the content's
        headers["Content-Type"] = "application/json"
    headers["Content-Length"] = str(len(content))
    replay = request.clone(method=method, headers=headers, rel_url=URL(request.path).with_query(params))
    replay[BODY] = content
    return await handler(replay)


def _form(raw: bytes) -> Mapping[str, str]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw),
                          max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise RequestError(400, "the alternate request syntax body is not a URL-encoded form", key="body") from None
    return dict(pairs)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS" or request.path in NO_AUTH:
        return await handler(request)
    key = request.app[MASTERY].config.mastery.class_key
    if not key:
        raise RequestError(503, "mastery.class_key is not set in edge.toml: evidence and mastery are refused "
                                "until a class key is configured", key="mastery.class_key")
    header = request.headers.get("Authorization")
    creds = basic(header)
    if creds is not None and creds[0] == launch.TOKEN_USER and request.path.startswith("/xapi/"):
        claims = launch.verify(key, creds[1], time.time(), "auth")
        if claims is None:
            raise RequestError(401, "this launch credential is not valid (expired, or the class key changed): "
                                    "open the lesson again from the student page",
                               headers={"WWW-Authenticate": 'Basic realm="classroom-edge mastery"'})
        request[PRINCIPAL] = Principal(claims)
    elif not basic_ok(header, AUTH_USER, key):
        raise RequestError(401, "HTTP Basic auth required: user 'class', password = the class key",
                           headers={"WWW-Authenticate": 'Basic realm="classroom-edge mastery"'})
    if request.path.startswith("/xapi/"):
        version = request.headers.get("X-Experience-API-Version", "")
        if not version:
            raise RequestError(400, "X-Experience-API-Version header is required (1.0.x)",
                               key="X-Experience-API-Version")
        if not is_version(version):
            raise RequestError(400, f"X-Experience-API-Version {version[:20]} is not supported: this LRS speaks "
                                    f"{XAPI_VERSION} (any 1.0.x is accepted)", key="X-Experience-API-Version")
    return await handler(request)


def resource(app: web.Application, path: str, handlers: Mapping[str, Handler]) -> None:
    """One route per resource whatever the method, so a request replayed from the alternate syntax (another
    method on the same path) reaches its handler; HEAD is GET without the body; others get 405."""
    allow = ", ".join([*handlers, *(["HEAD"] if "GET" in handlers else [])])

    async def dispatch(request: web.Request) -> web.StreamResponse:
        method = "GET" if request.method == "HEAD" else request.method
        handler = handlers.get(method)
        if handler is None:
            raise RequestError(405, f"method {request.method} is not allowed here", headers={"Allow": allow})
        return await handler(request)

    app.router.add_route("*", path, dispatch)
