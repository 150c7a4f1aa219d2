"""schemathesis against the mastery API's own OpenAPI document (/api/v1/openapi.json), on a real server on
127.0.0.1 with a fresh store. Bounded and seeded (a fixed number of examples per operation, derandomized).

The checks are tests/fuzzing.py's (documented answers only, the document's own refusal rules, invalid data a
4xx). Afterwards good evidence is still stored and reported.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis

from edge.config import parse_config
from edge.mastery.app import make_app
from tests.fuzzing import fuzz_schema
from tests.mastery.served import Served

EXAMPLES = 30  # per operation and generation mode
KEY = "fuzz-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"class:{KEY}".encode()).decode()}


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    config = parse_config({"unit": {"state_dir": str(tmp_path)}, "mastery": {"class_key": KEY}})
    with Served(make_app(config)) as served:
        yield served.url


def test_every_operation_answers_by_its_document(base_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    session = requests.Session()
    ran = fuzz_schema(schema, EXAMPLES, base_url=base_url, session=session, headers=AUTH)
    assert len(ran) >= 5, ran  # every documented operation was exercised
    # whatever the fuzzer stored, good evidence still goes in and comes out
    item = {"id": "after-fuzz", "student": "s-after", "skill": "after", "correct": True, "timestamp": 1714557600}
    r = session.post(f"{base_url}/api/v1/evidence", json=[item], headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    r = session.get(f"{base_url}/api/v1/mastery", params={"skill": "after"}, headers=AUTH, timeout=10)
    assert [s["student"] for s in r.json()["students"]] == ["s-after"]
