"""schemathesis against the fleet collector's own OpenAPI document (/api/v1/openapi.json), on a real server on
127.0.0.1 with a fresh database. Bounded and seeded, with tests/fuzzing.py's checks (documented answers only,
schema-violating data refused with a 4xx). Afterwards a good heartbeat is still taken and listed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis

from edge.config import EdgeConfig
from edge.fleet.collector import make_app
from tests.fleet.conftest import TOKENS, heartbeat
from tests.fuzzing import fuzz_schema
from tests.mastery.served import Served

EXAMPLES = 30  # per operation and generation mode
AUTH = {"Authorization": f"Bearer {TOKENS['Lincoln Elementary']}"}


@pytest.fixture
def base_url(fleet_config: EdgeConfig) -> Iterator[str]:
    with Served(make_app(fleet_config)) as served:
        yield served.url


def test_every_operation_answers_by_its_document(base_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    session = requests.Session()
    ran = fuzz_schema(schema, EXAMPLES, base_url=base_url, session=session, headers=AUTH)
    assert len(ran) >= 4, ran  # every documented operation was exercised
    r = session.post(f"{base_url}/api/v1/heartbeat", json=heartbeat(7), headers=AUTH, timeout=10)
    assert r.status_code in (200, 204), r.text
    r = session.get(f"{base_url}/api/v1/units/unit-00007", headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["room"] == "Room 7", r.text
