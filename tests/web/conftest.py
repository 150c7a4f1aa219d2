"""Web fixtures: a RotationService on mock pins and a FakeClock, its flask app, a teacher login helper and an
OpenAPI checker that validates every /api/v1 response the tests see."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from werkzeug.test import TestResponse

from edge.clock import FakeClock
from edge.config import EdgeConfig
from edge.rotation.plan import Plan, parse_plan
from edge.rotation.service import RotationService
from edge.web import create_app
from edge.web.openapi import spec
from tests.rotation.plans import PLAN_TOML

PIN = "4821"
TOKEN = "secret-api-token"


@pytest.fixture
def web_config(make_config: Any) -> EdgeConfig:
    cfg: EdgeConfig = make_config(web={"teacher_pin": PIN, "api_token": TOKEN, "session_minutes": 60})
    return cfg


@pytest.fixture
def math_plan() -> Plan:
    return parse_plan(tomllib.loads(PLAN_TOML), "plan.toml")


@pytest.fixture
def rotation(web_config: EdgeConfig, clock: FakeClock, mock_factory: Any, math_plan: Plan) -> Iterator[RotationService]:
    svc = RotationService(web_config, clock)
    svc.plans.save(math_plan)
    yield svc
    svc.devices.close()


@pytest.fixture
def app(web_config: EdgeConfig, rotation: RotationService) -> Flask:
    return create_app(web_config, rotation)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "page has no CSRF field"
    return m[1]


def login(client: FlaskClient, pin: str = PIN) -> TestResponse:
    token = csrf_of(client.get("/teacher/login").get_data(as_text=True))
    return client.post("/teacher/login", data={"pin": pin, "csrf_token": token})


@pytest.fixture
def teacher(client: FlaskClient) -> FlaskClient:
    """A client logged in as the teacher."""
    assert login(client).status_code == 302
    return client


def page_csrf(client: FlaskClient, path: str = "/teacher") -> str:
    return csrf_of(client.get(path).get_data(as_text=True))


class OpenApi:
    """Checks a response against the documented operation: the status is listed and the body validates."""

    def __init__(self) -> None:
        self.doc = spec()
        self.paths = [(re.compile("^" + re.sub(r"\{\w+\}", "[^?]+", p) + "$"), p) for p in self.doc["paths"]]

    def operation(self, method: str, path: str) -> dict[str, Any]:
        for rx, template in self.paths:
            if rx.match(path):
                ops = self.doc["paths"][template]
                assert method.lower() in ops, f"{method} {template} is not documented"
                op: dict[str, Any] = ops[method.lower()]
                return op
        raise AssertionError(f"{path} is not documented")

    def check(self, method: str, path: str, resp: TestResponse) -> None:
        op = self.operation(method, path)
        status = str(resp.status_code)
        assert status in op["responses"], f"{method} {path} answered undocumented {status}: {resp.data[:200]!r}"
        documented = op["responses"][status]
        if "$ref" in documented:
            documented = self.doc["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
        if "content" not in documented:
            assert resp.data == b""
            return
        assert resp.mimetype == "application/json"
        schema = documented["content"]["application/json"]["schema"]
        Draft202012Validator({**schema, "components": self.doc["components"]}).validate(resp.get_json())


@pytest.fixture(scope="session")
def openapi() -> OpenApi:
    return OpenApi()


Api = Callable[..., TestResponse]


@pytest.fixture
def api(client: FlaskClient, openapi: OpenApi) -> Api:
    """`api(method, "/rotation", json=..., token=True|False|"x", csrf="...")`: every answer checked by the spec."""

    def call(method: str, path: str, token: bool | str = True, csrf: str | None = None, **kw: Any) -> TestResponse:
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {TOKEN if token is True else token}"
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        resp = client.open(f"/api/v1{path}", method=method, headers=headers, **kw)
        openapi.check(method, path, resp)
        return resp

    return call
