"""The rotation's web pages and JSON API (flask): `create_app(config, rotation)`.

Pages stay live by polling GET /api/v1/rotation (board every 0.5 s, others every 1 s) rather than with
server-sent events: waitress gives each open SSE stream a worker thread for good, so a classroom of
Chromebooks would exhaust the pool, and a poll recovers by itself when the unit restarts. Pages count down
between polls on their own clock, from `remaining_s`.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, make_response, render_template, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from edge.config import EdgeConfig
from edge.exc import RequestError
from edge.fsutil import atomic_write
from edge.rotation.periods import PeriodStore
from edge.rotation.service import RotationService
from edge.rotation.status_line import clock_text
from edge.rotation.web import api, auth, launch, ops, pages
from edge.rotation.web.context import EXT, WebContext
from edge.rotation.web.openapi import SESSION_COOKIE
from edge.rotation.web.ops import rotation_health
from edge.rotation.web.ratelimit import FailureLimiter
from edge.rotation.web.sessions import SessionRegistry
from edge.rotation.web.teacherpin import TeacherPin
from edge.serving import jsontext
from edge.serving.errors import error_body

log = logging.getLogger(__name__)
SECRET_FILE = "web-secret.key"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _secret_key(state_dir: Path) -> bytes:
    """A per-unit session key kept in the state directory, so teachers stay logged in across restarts."""
    path = state_dir / SECRET_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    try:
        atomic_write(path, key, mode=0o600)  # never readable by others, not even for a moment
    except OSError as e:  # a read-only state dir: the pages still serve (sessions end at the next restart)
        log.error("cannot save the session key to %s: %s", path, e.strerror)
    return key


def _error(status: int, message: str, key: str | None, reason: str | None, headers: dict[str, str]) -> Any:
    """The one JSON error shape under /api/, the error page elsewhere."""
    if request.path.startswith("/api/"):
        resp = jsonify(error_body(status, message, key=key, reason=reason))
    else:
        resp = make_response(render_template("error.html", status=status, title=HTTP_STATUS_CODES.get(status, ""),
                                             message=message))
    resp.status_code = status
    resp.headers.update(headers)
    return resp


class StrictJSON(DefaultJSONProvider):
    """Only RFC 8259 JSON in and out (edge.serving.jsontext): no NaN/Infinity, deep nesting is a 400."""

    sort_keys = False  # group -> station maps keep plan order

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return jsontext.dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return jsontext.loads(s)


class PagesApp(Flask):
    json_provider_class = StrictJSON


def create_app(config: EdgeConfig, rotation: RotationService) -> Flask:
    app = PagesApp(__name__)
    app.secret_key = _secret_key(config.state_dir)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=config.web.session_minutes),
        MAX_CONTENT_LENGTH=256 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=0,  # static files are tiny; an update must show at once
    )
    context = WebContext(config=config, rotation=rotation, plans=rotation.plans,
                         periods=PeriodStore(config.state_dir), limiter=FailureLimiter(rotation.clock.time),
                         sessions=SessionRegistry(config.state_dir),
                         health=rotation_health(rotation, config.web.api_token), teacher_pin=TeacherPin(config))
    app.extensions[EXT] = context
    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(launch.bp)
    app.jinja_env.globals.update(csrf_token=auth.csrf_token, clock_text=clock_text, room=config.unit.room,
                                 teacher_logged_in=lambda: auth.session_state() == "ok")

    @app.errorhandler(RequestError)
    def request_error(e: RequestError) -> Any:
        return _error(e.status, e.message, e.key, e.reason, e.headers)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Any:
        headers = {k: v for k, v in (e.get_headers() or []) if k in ("Allow", "Retry-After")}
        return _error(e.code or 500, e.description or e.name, None, None, headers)

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith(("/teacher", "/api/")):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    return app
