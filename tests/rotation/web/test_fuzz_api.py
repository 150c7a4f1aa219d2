"""schemathesis against the rotation API's own OpenAPI document, in process (WSGI), on a fresh unit.

Bounded and seeded (tests/fuzzing.py): every answer documented and matching its schema, schema-valid data
refused only for the document's own rules, invalid data a 4xx; afterwards the teacher page and the plan list
still open, whatever the fuzzer saved.
"""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient

from tests.fuzzing import fuzz_schema
from tests.rotation.web.helpers import TOKEN, login

EXAMPLES = 25  # per operation (and per generation mode); the 42k-case run took ~7 minutes


@pytest.fixture
def fuzz_app(app: Flask) -> Flask:
    app.config["TESTING"] = False  # errors as the unit answers them, not re-raised into the test
    return app


def test_every_operation_answers_by_its_document(fuzz_app: Flask, client: FlaskClient) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    ran = fuzz_schema(schema, EXAMPLES, headers=headers)
    assert len(ran) >= 14, ran  # every documented operation was exercised
    # whatever the fuzzer saved or deleted, the teacher still has a working page and API
    assert login(client).status_code == 302
    assert client.get("/teacher").status_code == 200
    resp = client.get("/api/v1/plans", headers=headers)
    assert resp.status_code == 200 and resp.is_json
