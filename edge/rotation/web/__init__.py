"""The rotation's web pages and JSON API (flask): `create_app(config, rotation)`.

Pages stay live by polling GET /api/v1/rotation (board every 0.5 s, others every 1 s) rather than with
server-sent events: waitress gives each open SSE stream a worker thread for good, so a classroom of
Chromebooks would exhaust the pool, and a poll recovers by itself when the unit restarts. Pages count down
between polls on their own clock, from `remaining_s`.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from edge.config import EdgeConfig
from edge.fsutil import atomic_write
from edge.rotation.periods import PeriodStore
from edge.rotation.service import RotationService
from edge.rotation.status_line import clock_text
from edge.rotation.web import api, auth, launch, pages
from edge.rotation.web.context import EXT, WebContext
from edge.rotation.web.ratelimit import FailureLimiter

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
    atomic_write(path, key)
    os.chmod(path, 0o600)
    return key


def create_app(config: EdgeConfig, rotation: RotationService) -> Flask:
    app = Flask(__name__)
    app.secret_key = _secret_key(config.state_dir)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME="edge_session",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=config.web.session_minutes),
        MAX_CONTENT_LENGTH=256 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=0,  # static files are tiny; an update must show at once
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # group -> station maps keep plan order
    context = WebContext(config=config, rotation=rotation, plans=rotation.plans,
                         periods=PeriodStore(config.state_dir), limiter=FailureLimiter(rotation.clock.time))
    app.extensions[EXT] = context
    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(launch.bp)
    app.jinja_env.globals.update(csrf_token=auth.csrf_token, clock_text=clock_text, room=config.unit.room,
                                 teacher_logged_in=lambda: auth.session_state() == "ok")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Any:
        status = e.code or 500
        if request.path.startswith("/api/"):
            return api.error(status, e.description or e.name)
        return render_template("error.html", status=status, title=e.name, message=e.description), status

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith(("/teacher", "/api/")):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    return app
