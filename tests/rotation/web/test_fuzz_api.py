"""schemathesis against the rotation API's own OpenAPI document, in process (WSGI), on a fresh unit.

Bounded and seeded: a fixed number of examples per operation, derandomized, so CI is repeatable. Every answer
must be documented and match its schema (no 5xx, no undocumented status, strict JSON); afterwards the teacher
page and the plan list still open, whatever the fuzzer saved.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance

from edge.rotation.web.openapi import CROSS_FIELD_RULES
from tests.rotation.web.helpers import TOKEN, login

EXAMPLES = 25  # per operation (and per generation mode); the 42k-case run took ~7 minutes


@pytest.fixture
def fuzz_app(app: Flask) -> Flask:
    app.config["TESTING"] = False  # errors as the unit answers them, not re-raised into the test
    return app


@schemathesis.check
def refused_only_for_documented_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """Schema-valid data may be refused only for a rule the document lists (what JSON Schema cannot say)."""
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive and response.status_code in (400, 422):
        body = response.json()
        reason = f"{body.get('reason', '')} {body.get('error', '')}"
        assert any(rule in reason for rule in CROSS_FIELD_RULES), f"schema-valid data refused: {body}"
    return None


def fuzz(operation: Any, headers: dict[str, str]) -> None:
    """Seeded examples of one operation, each answer validated against the document."""

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: Any) -> None:
        case = data.draw(operation.as_strategy())
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance],
                               additional_checks=[refused_only_for_documented_rules])

    run()


def test_every_operation_answers_by_its_document(fuzz_app: Flask, client: FlaskClient) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    ran: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        fuzz(operation, headers)
        ran.append(operation.label)
    assert len(ran) >= 14, ran  # every documented operation was exercised
    # whatever the fuzzer saved or deleted, the teacher still has a working page and API
    assert login(client).status_code == 302
    assert client.get("/teacher").status_code == 200
    resp = client.get("/api/v1/plans", headers=headers)
    assert resp.status_code == 200 and resp.is_json
