"""Teacher auth: no PIN configured, wrong PIN (rate limited), expired session, CSRF, logout, redirects."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from edge.clock import FakeClock
from edge.rotation.service import RotationService
from edge.rotation.web import create_app
from edge.rotation.web.ratelimit import FailureLimiter
from tests.rotation.web.helpers import PIN, csrf_of, login, page_csrf


def test_teacher_pages_redirect_to_login(client: FlaskClient) -> None:
    for path in ("/teacher", "/teacher/plan", "/teacher/periods"):
        resp = client.get(path)
        assert resp.status_code == 302
        assert resp.headers["Location"].startswith("/teacher/login?next=")


def test_no_pin_configured_disables_teacher_control(make_config: Any, clock: FakeClock, mock_factory: Any) -> None:
    cfg = make_config(web={"api_token": "t"})
    svc = RotationService(cfg, clock)
    try:
        client = create_app(cfg, svc).test_client()
        page = client.get("/teacher/login").get_data(as_text=True)
        assert "Teacher control is disabled" in page and "teacher_pin" in page
        assert 'name="pin"' not in page
        resp = client.post("/teacher/login", data={"pin": "", "csrf_token": "x"})
        assert resp.status_code == 403
        assert client.get("/teacher").status_code == 302  # still no way in
        assert client.get("/board").status_code == 200  # the other pages work
    finally:
        svc.devices.close()


def test_right_pin_logs_in_and_follows_next(client: FlaskClient) -> None:
    page = client.get("/teacher/login?next=/teacher/periods").get_data(as_text=True)
    resp = client.post("/teacher/login", data={"pin": PIN, "csrf_token": csrf_of(page), "next": "/teacher/periods"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/teacher/periods"
    assert client.get("/teacher").status_code == 200
    assert client.get("/teacher/login").status_code == 302  # already logged in


def test_next_must_be_a_local_path(app: Any) -> None:
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        client = app.test_client()
        page = client.get("/teacher/login").get_data(as_text=True)
        resp = client.post("/teacher/login", data={"pin": PIN, "csrf_token": csrf_of(page), "next": evil})
        assert resp.headers["Location"] == "/teacher", evil


def test_session_cookie_is_httponly_and_strict(client: FlaskClient) -> None:
    resp = login(client)
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_login_needs_the_csrf_token(client: FlaskClient) -> None:
    client.get("/teacher/login")
    resp = client.post("/teacher/login", data={"pin": PIN})
    assert resp.status_code == 400 and "out of date" in resp.get_data(as_text=True)
    assert client.get("/teacher").status_code == 302


def test_wrong_pin_is_rate_limited(client: FlaskClient, clock: FakeClock) -> None:
    for _ in range(5):
        resp = login(client, "0000")
        assert resp.status_code == 401 and "Wrong PIN" in resp.get_data(as_text=True)
    resp = login(client, PIN)  # even the right PIN waits now
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) == 300
    assert "Too many wrong PINs" in resp.get_data(as_text=True)
    clock.advance(299)
    assert login(client, PIN).status_code == 429
    clock.advance(2)
    assert login(client, PIN).status_code == 302


def test_limiter_window_per_client_and_overall() -> None:
    now = [0.0]
    lim = FailureLimiter(lambda: now[0], per_client=2, overall=3, window_s=10)
    lim.failed("a")
    now[0] = 4
    lim.failed("a")
    assert lim.retry_after("a") == 6 and lim.retry_after("b") == 0
    lim.failed("b")
    assert lim.retry_after("c") == 6  # 3 failures from anyone: everyone waits for the oldest to age out
    now[0] = 10  # the failure at 0 has aged out
    assert lim.retry_after("a") == 0 and lim.retry_after("c") == 0
    lim.failed("a")
    assert lim.retry_after("a") == 4  # failures at 4 and 10: the one at 4 ages out at 14
    lim.succeeded("a")
    assert lim.retry_after("a") == 4  # the overall count is not reset by one success
    lim = FailureLimiter(lambda: now[0], per_client=2, overall=100, window_s=10)
    lim.failed("a")
    lim.failed("a")
    assert lim.retry_after("a") == 10
    lim.succeeded("a")
    assert lim.retry_after("a") == 0


def test_session_expires_after_session_minutes(teacher: FlaskClient, clock: FakeClock) -> None:
    csrf = page_csrf(teacher)
    clock.advance(59 * 60)
    assert teacher.get("/teacher").status_code == 200
    clock.advance(2 * 60)
    resp = teacher.post("/api/v1/rotation/end", headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 401 and "expired" in resp.get_json()["error"]
    resp = teacher.get("/teacher")
    assert resp.status_code == 302 and "expired=1" in resp.headers["Location"]
    assert "Your session expired" in teacher.get(resp.headers["Location"]).get_data(as_text=True)
    assert login(teacher).status_code == 302
    assert teacher.get("/teacher").status_code == 200


def test_changing_the_pin_logs_teachers_out(teacher: FlaskClient, make_config: Any, rotation: RotationService,
                                            app: Any) -> None:
    app2 = create_app(make_config(web={"teacher_pin": "9999"}), rotation)  # same state dir: same session key
    client2 = app2.test_client()
    cookie = teacher.get_cookie("edge_session")
    assert cookie is not None
    client2.set_cookie(cookie.key, cookie.value)
    assert client2.get("/teacher").status_code == 302
    assert teacher.get("/teacher").status_code == 200


def test_page_posts_need_the_csrf_token(teacher: FlaskClient, rotation: RotationService) -> None:
    resp = teacher.post("/teacher/act/start", data={"plan": "Math block"})
    assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True)
    resp = teacher.post("/teacher/act/start", data={"plan": "Math block", "csrf_token": "forged"})
    assert resp.status_code == 400
    assert rotation.engine.snapshot().status == "idle"
    resp = teacher.post("/teacher/act/start", data={"plan": "Math block", "csrf_token": page_csrf(teacher)})
    assert resp.status_code == 302 and rotation.engine.snapshot().status == "running"


def test_logout_needs_csrf_and_ends_the_session(teacher: FlaskClient) -> None:
    assert teacher.post("/teacher/logout").status_code == 400
    assert teacher.get("/teacher").status_code == 200
    resp = teacher.post("/teacher/logout", data={"csrf_token": page_csrf(teacher)})
    assert resp.status_code == 302
    assert teacher.get("/teacher").status_code == 302


def test_the_session_key_survives_a_restart(teacher: FlaskClient, web_config: Any, rotation: RotationService) -> None:
    client2 = create_app(web_config, rotation).test_client()
    cookie = teacher.get_cookie("edge_session")
    assert cookie is not None
    client2.set_cookie(cookie.key, cookie.value)
    assert client2.get("/teacher").status_code == 200
    key = web_config.state_dir / "web-secret.key"
    assert key.stat().st_mode & 0o777 == 0o600
