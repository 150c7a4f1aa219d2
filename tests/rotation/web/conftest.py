"""Web fixtures: a RotationService on mock pins and a FakeClock, its flask app, clients, and the API caller."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from edge.clock import FakeClock
from edge.config import EdgeConfig
from edge.rotation.plan import Plan, parse_plan
from edge.rotation.service import RotationService
from edge.rotation.web import create_app
from tests.rotation.plans import PLAN_TOML
from tests.rotation.web.helpers import PIN, TOKEN, Api, OpenApi, login


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


@pytest.fixture
def teacher(client: FlaskClient) -> FlaskClient:
    """A client logged in as the teacher."""
    assert login(client).status_code == 302
    return client


@pytest.fixture(scope="session")
def openapi() -> OpenApi:
    return OpenApi()


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
