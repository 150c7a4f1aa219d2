"""Helpers for the page and API tests: the teacher PIN and token, login and CSRF helpers, and an OpenAPI
checker that validates every /api/v1 response the tests see (fixtures are in conftest.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from werkzeug.test import TestResponse

from edge.rotation.web.openapi import spec

PIN = "4821"
TOKEN = "secret-api-token"


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "page has no CSRF field"
    return m[1]


def login(client: FlaskClient, pin: str = PIN) -> TestResponse:
    token = csrf_of(client.get("/teacher/login").get_data(as_text=True))
    return client.post("/teacher/login", data={"pin": pin, "csrf_token": token})


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


Api = Callable[..., TestResponse]
