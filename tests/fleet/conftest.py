"""Fleet fixtures: a collector config with two schools' tokens, heartbeat documents, an OpenAPI checker."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from edge.config import EdgeConfig
from edge.fleet.openapi import spec

TOKENS = {"Lincoln Elementary": "lincoln-token-0123456789", "Adams Middle": "adams-token-0123456789ab"}


class FakeTime:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def heartbeat(i: int, school: str = "Lincoln Elementary", **extra: Any) -> dict[str, Any]:
    """A document like edge/sync/heartbeat.py builds, for simulated unit number `i`."""
    doc: dict[str, Any] = {
        "unit": {"id": f"unit-{i:05d}", "room": f"Room {i}", "school": school, "hostname": f"pi-{i}"},
        "version": "0.1.0", "uptime_s": 100.0 + i, "host_uptime_s": 200.0, "cache_bytes": 1000 * i,
        "backlog": i % 7, "pin_factory": "LGPIOFactory", "kernel": "compiled", "sent_at": "2027-01-15T08:00:00Z",
        "ports": {"web": 8000, "cache": 8080, "mastery": 8090}, "disk_free_bytes": 10**9,
        "disk_total_bytes": 32 * 10**9, "clock_synced": True, "oldest_unsent_age_s": 60.0 if i % 7 else None,
        "faults": [],
    }
    doc.update(extra)
    return doc


@pytest.fixture
def fleet_config(make_config: Any) -> EdgeConfig:
    cfg: EdgeConfig = make_config(fleet={"host": "127.0.0.1", "port": 0, "tokens": TOKENS, "offline_minutes": 15,
                                         "max_units": 500})
    return cfg


class OpenApi:
    """Checks an answer against the documented operation: status listed, body valid."""

    def __init__(self) -> None:
        self.doc = spec()
        self.paths = [(re.compile("^" + re.sub(r"\{\w+\}", "[^/?]+", p) + "$"), p) for p in self.doc["paths"]]

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        for rx, template in self.paths:
            if rx.match(path):
                op = self.doc["paths"][template][method.lower()]
                break
        else:
            raise AssertionError(f"{path} is not documented")
        assert str(status) in op["responses"], f"{method} {path} answered undocumented {status}: {body!r}"
        documented = op["responses"][str(status)]
        if "$ref" in documented:
            documented = self.doc["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
        if "content" not in documented:
            assert body is None
            return
        schema = documented["content"]["application/json"]["schema"]
        Draft202012Validator({**schema, "components": self.doc["components"]}).validate(body)


@pytest.fixture(scope="session")
def openapi() -> OpenApi:
    return OpenApi()
