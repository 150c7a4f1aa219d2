"""Statements and district settings for the sync tests (no pytest import: the campaign worker uses them)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

from edge.config import DistrictConfig
from tests.sync.lrs import PASSWORD, USER, Ralph


def district(url: str, **kw: Any) -> DistrictConfig:
    values: dict[str, Any] = {"lrs_url": url, "lrs_user": USER, "lrs_password": PASSWORD, "batch_size": 100}
    values.update(kw)
    return DistrictConfig(**values)


def statement(i: int, *, student: str | None = None, success: bool = True) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent",
                  "account": {"homePage": "https://sis.example.org", "name": student or f"stu-{i % 37:04d}"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}},
        "object": {"objectType": "Activity", "id": f"https://lessons.example.org/fractions/q{i % 50}"},
        "result": {"success": success},
        "timestamp": f"2026-03-02T09:{(i // 60) % 60:02d}:{i % 60:02d}.000Z",
    }


def items(n: int, start: int = 0) -> list[tuple[str, str]]:
    out = []
    for i in range(start, start + n):
        st = statement(i)
        out.append((st["id"], json.dumps(st)))
    return out


def assert_lrs_holds_exactly(ralph: Ralph, expected: set[str]) -> None:
    """The LRS returns and stores every expected id exactly once, and nothing else."""
    got = ralph.statement_ids()
    assert Counter(got).most_common(1)[0][1] == 1 if got else True, "duplicates returned by GET"
    assert set(got) == expected
    lines = Counter(s["id"] for s in ralph.stored_lines())
    assert set(lines) == expected and max(lines.values(), default=1) == 1, "duplicates stored"
