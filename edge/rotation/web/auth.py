"""Teacher authentication: PIN login with a session cookie, CSRF tokens, wrong-PIN rate limiting, and the
API's bearer token.

A session is valid for `[web] session_minutes` after login, measured on the rotation's clock (so tests use a
FakeClock) and checked on the server (edge.rotation.web.sessions), not just by the cookie: logging out
revokes it there, and a fingerprint of the PIN makes changing the PIN in edge.toml log every teacher out.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from edge.exc import RequestError
from edge.rotation.web.context import ctx
from edge.rotation.web.teacherpin import Pin
from edge.serving.auth import bearer_ok, secret_ok

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SessionState = Literal["ok", "expired", "none"]


def csrf_token() -> str:
    """This session's CSRF token (created on first use); every form and fetch sends it back."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok() -> bool:
    expected = session.get("csrf")
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return isinstance(expected, str) and secret_ok(sent, expected)


def _pin_fingerprint(pin: str) -> str:
    key = str(current_app.secret_key).encode()
    return hmac.new(key, pin.encode(), hashlib.sha256).hexdigest()[:16]


def session_state() -> SessionState:
    if not session.get("teacher"):
        return "none"
    c = ctx()
    pin = c.teacher_pin.current()
    if pin is None:
        return "expired"
    state = c.sessions.check(session.get("sid"), _pin_fingerprint(pin.material), c.now(),
                             c.config.web.session_minutes * 60)
    return "expired" if state == "none" else state


def _end_session() -> None:
    ctx().sessions.revoke(session.get("sid"))  # on the server too: a copy of the cookie opens nothing now
    token = session.get("csrf")
    session.clear()
    if isinstance(token, str):
        session["csrf"] = token  # keep the login form's token valid


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if (target and target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not urlsplit(target).netloc):  # browsers read "/\\host" as "//host"
        return target
    return url_for("pages.teacher")


def teacher_required(view: F) -> F:
    """Pages: teachers only; POSTs also need the CSRF token."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        state = session_state()
        if state != "ok":
            if state == "expired":
                _end_session()
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?"),
                                    expired=1 if state == "expired" else None))
        if request.method not in ("GET", "HEAD") and not csrf_ok():
            abort(400, "The form was out of date (missing or wrong CSRF token). Reload the page and try again.")
        return view(*args, **kwargs)

    return cast(F, wrapped)


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="classroom-edge"'}


def api_authorise() -> None:
    """Return if the request may use the teacher API, else raise the 401/403 RequestError saying why."""
    if request.headers.get("Authorization"):
        if not bearer_ok(request.headers.get("Authorization"), ctx().config.web.api_token):
            raise RequestError(401, "invalid bearer token", key="Authorization", headers=UNAUTHORIZED)
        return
    state = session_state()
    if state == "expired":
        raise RequestError(401, "the teacher session expired: log in again", headers=UNAUTHORIZED)
    if state == "none":
        raise RequestError(401, "log in as the teacher or send 'Authorization: Bearer <api_token>'",
                           headers=UNAUTHORIZED)
    if request.method not in ("GET", "HEAD") and not csrf_ok():
        raise RequestError(403, f"missing or wrong CSRF token (send the {CSRF_HEADER} header)", key=CSRF_HEADER)


@bp.route("/teacher/login", methods=["GET", "POST"])
def login() -> BaseResponse | str | tuple[str, int]:
    c = ctx()
    pin = c.teacher_pin.current()
    nxt = request.values.get("next")
    if pin is None:
        if c.teacher_pin.awaiting_setup() is not None:
            return redirect(url_for("auth.setup", next=nxt))
        return render_template("login.html", disabled=True, next=nxt), 403 if request.method == "POST" else 200
    if request.method == "GET":
        if session_state() == "ok":
            return redirect(_safe_next(nxt))
        expired = request.args.get("expired") == "1"
        return render_template("login.html", disabled=False, next=nxt,
                               error="Your session expired. Enter the PIN again." if expired else None)
    client = request.remote_addr or "?"
    wait = c.limiter.retry_after(client)
    if wait > 0:
        return _too_many("login.html", "PINs", wait, disabled=False, next=nxt)
    if not csrf_ok():
        return render_template("login.html", disabled=False, next=nxt,
                               error="The form was out of date. Enter the PIN again."), 400
    if not pin.matches(request.form.get("pin", "").strip()):
        c.limiter.failed(client)
        log.warning("wrong teacher PIN from %s", client)
        return render_template("login.html", disabled=False, next=nxt, error="Wrong PIN."), 401
    c.limiter.succeeded(client)
    _start_session(pin)
    log.info("teacher logged in from %s", client)
    return redirect(_safe_next(nxt))


def _too_many(template: str, what: str, wait: float, **context: Any) -> Response:
    secs = math.ceil(wait)
    resp = Response(render_template(template, error=f"Too many wrong {what}. Try again in {secs} seconds.",
                                    **context), 429)
    resp.headers["Retry-After"] = str(secs)
    return resp


def _start_session(pin: Pin) -> None:
    """A fresh session (and CSRF token) for a teacher who proved the PIN."""
    c = ctx()
    session.clear()
    session.permanent = True
    session.update(teacher=True, sid=c.sessions.create(c.now(), _pin_fingerprint(pin.material)),
                   csrf=secrets.token_urlsafe(32))


@bp.route("/teacher/setup", methods=["GET", "POST"])
def setup() -> BaseResponse | str | tuple[str, int]:
    """First use of /teacher on a unit without a PIN: the setup code from the station board and a new PIN."""
    c = ctx()
    nxt = request.values.get("next")
    if c.teacher_pin.awaiting_setup() is None:
        return redirect(url_for("auth.login", next=nxt))
    if request.method == "GET":
        return render_template("setup.html", next=nxt)
    client = request.remote_addr or "?"
    wait = c.limiter.retry_after(client)
    if wait > 0:
        return _too_many("setup.html", "setup codes", wait, next=nxt)
    if not csrf_ok():
        return render_template("setup.html", next=nxt, error="The form was out of date. Try again."), 400
    try:
        c.teacher_pin.set_with_code(request.form.get("code", ""), request.form.get("pin", "").strip(),
                                    request.form.get("confirm", "").strip())
    except RequestError as e:
        if e.key == "code":
            c.limiter.failed(client)
            log.warning("wrong teacher setup code from %s", client)
        return render_template("setup.html", next=nxt, error=e.message, field=e.key), e.status
    c.limiter.succeeded(client)
    pin = c.teacher_pin.current()
    assert pin is not None
    _start_session(pin)
    log.info("teacher PIN set with the setup code from %s", client)
    return redirect(_safe_next(nxt))


@bp.post("/teacher/logout")
def logout() -> BaseResponse:
    if not csrf_ok():
        abort(400, "The form was out of date (missing or wrong CSRF token).")
    _end_session()
    return redirect(url_for("auth.login"))
