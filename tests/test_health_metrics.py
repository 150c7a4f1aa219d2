"""/healthz and /metrics on the cache and the mastery service: open tiny health, Prometheus text that
prometheus_client's parser reads, bearer-protected by the API token."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from content_cache.server import make_app as cache_app
from edge.config import parse_config
from edge.mastery.app import make_app as mastery_app
from edge.serving.aio import bound_port, start_site

TOKEN = "metrics-token-123"


async def _scrape(app: web.Application, authed: bool = True) -> tuple[int, dict[str, Any], int, str]:
    runner = await start_site(app, "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{bound_port(runner)}"
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/healthz") as r:
                health_status, health = r.status, await r.json()
            headers = {"Authorization": f"Bearer {TOKEN}"} if authed else {}
            async with s.get(f"{base}/metrics", headers=headers) as r:
                return health_status, health, r.status, await r.text()
    finally:
        await runner.cleanup()


def _names(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)}


async def test_cache_health_and_metrics(tmp_path: Path) -> None:
    config = parse_config({"unit": {"state_dir": str(tmp_path / "s")}, "web": {"api_token": TOKEN}}, "t.toml")
    status, health, _, _ = await _scrape(cache_app(config), authed=False)
    assert status == 200 and health["status"] == "ok" and health["service"] == "cache"
    assert (await _scrape(cache_app(config), authed=False))[2] == 401
    _, _, code, text = await _scrape(cache_app(config))
    assert code == 200
    names = _names(text)
    for name in ("classroom_edge_cache_hits", "classroom_edge_cache_misses", "classroom_edge_cache_coalesced",
                 "classroom_edge_cache_bytes_served", "classroom_edge_cache_upstream_healthy",
                 "classroom_edge_disk_free_bytes", "classroom_edge_clock_synchronised"):
        assert name in names, name


async def test_mastery_health_and_metrics(tmp_path: Path) -> None:
    config = parse_config({"unit": {"state_dir": str(tmp_path / "s")}, "web": {"api_token": TOKEN},
                           "mastery": {"class_key": "k"}}, "t.toml")
    app = mastery_app(config)
    runner = await start_site(app, "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{bound_port(runner)}"
        auth = {"Authorization": "Basic " + base64.b64encode(b"class:k").decode()}
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{base}/api/v1/evidence", headers=auth, json=[
                    {"id": "e1", "student": "s1", "skill": "frac", "correct": 1, "timestamp": 1714557600}]) as r:
                assert r.status == 200
            async with s.get(f"{base}/healthz") as r:
                assert r.status == 200 and (await r.json())["status"] == "ok"
            async with s.get(f"{base}/metrics") as r:
                assert r.status == 401
            async with s.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                text = await r.text()
    finally:
        await runner.cleanup()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["classroom_edge_mastery_evidence"].samples[0].value == 1
    requests = {s.labels["status"]: s.value for s in fams["classroom_edge_intake_requests"].samples
                if s.name.endswith("_total")}
    assert requests == {"200": 1.0}
    assert "classroom_edge_sync_backlog_statements" in fams and "classroom_edge_intake_latency_seconds" in fams
