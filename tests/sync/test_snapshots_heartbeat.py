"""Mastery snapshot statements, back-off, and the heartbeat document and its delivery."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from edge.config import UnitConfig
from edge.sync.heartbeat import build_heartbeat, send_heartbeat
from edge.sync.uploader import Backoff, statements_url
from edge.xapi import MASTERY_EXTENSION, snapshot_statement
from tests.net import free_port


def test_snapshot_statement_is_deterministic_and_carries_the_estimate() -> None:
    kw: dict[str, Any] = dict(student="stu-7", skill="fractions.add", p_mastery=0.8123456, evidence_count=9,
                              at=datetime(2026, 3, 2, 15, 0, tzinfo=UTC), home_page="https://sis.example.org",
                              unit=UnitConfig(room="Room 12", school="Lincoln"), band="mastered")
    a, b = snapshot_statement(**kw), snapshot_statement(**kw)
    assert a == b and a["timestamp"] == "2026-03-02T15:00:00.000Z"
    assert a["result"]["extensions"][MASTERY_EXTENSION]["pMastery"] == 0.812346
    assert a["object"]["id"].endswith("/skills/fractions.add")
    assert snapshot_statement(**{**kw, "student": "stu-8"})["id"] != a["id"]
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        snapshot_statement(**{**kw, "p_mastery": 1.5})
    with pytest.raises(ValueError, match="timezone"):
        snapshot_statement(**{**kw, "at": datetime(2026, 3, 2)})


def test_statements_url_and_backoff() -> None:
    assert statements_url("https://lrs.example.org/xAPI/") == "https://lrs.example.org/xAPI/statements"
    assert statements_url("https://lrs.example.org/xAPI/statements") == "https://lrs.example.org/xAPI/statements"
    b = Backoff(base_s=1.0, cap_s=30.0, rng=random.Random(5))
    delays = [b.next_delay() for _ in range(10)]
    assert all(0 <= d <= min(30.0, 2**i) for i, d in enumerate(delays))
    assert len(set(delays)) == 10  # jitter
    assert b.next_delay(retry_after=12.0) >= 12.0
    b.reset()
    assert b.next_delay() <= 1.0


async def test_heartbeat_posts_identity_and_health_without_foreign_credentials(make_config: Any) -> None:
    got: list[tuple[dict[str, Any], str]] = []

    async def hb(request: web.Request) -> web.Response:
        got.append((json.loads(await request.read()), request.headers.get("Authorization", "")))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/units/heartbeat", hb)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        url = f"http://127.0.0.1:{port}/units/heartbeat"
        other = make_config(unit={"room": "Room 12", "school": "Lincoln"},
                            district={"heartbeat_url": url, "lrs_url": "https://lrs.example.org/xAPI",
                                      "lrs_token": "secret"})
        doc = build_heartbeat(other, pin_factory="mock", backlog=17)
        assert await send_heartbeat(other, doc) == 204
        same = make_config(district={"heartbeat_url": url, "lrs_url": f"http://127.0.0.1:{port}/xAPI",
                                     "lrs_token": "secret"})
        assert await send_heartbeat(same, build_heartbeat(same, backlog=0)) == 204
    finally:
        await runner.cleanup()
    (first, auth1), (_, auth2) = got
    assert auth1 == "" and auth2 == "Bearer secret"
    assert first["unit"]["room"] == "Room 12" and first["unit"]["school"] == "Lincoln"
    assert first["backlog"] == 17 and first["pin_factory"] == "mock" and first["kernel"] in ("compiled", "python")
    assert {"version", "uptime_s", "host_uptime_s", "cache_bytes", "sent_at"} <= set(first)
