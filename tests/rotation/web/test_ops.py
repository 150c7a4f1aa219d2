"""/healthz and /metrics of the rotation unit: tiny JSON health (503 with the reason when the loop stalls or the
state dir cannot take writes), Prometheus text that prometheus_client's own parser reads, bearer-protected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from edge.clock import FakeClock
from edge.rotation.service import RotationService
from edge.rotation.web import create_app
from tests.mounts import tmpfs
from tests.rotation.plans import make_plan
from tests.rotation.web.helpers import TOKEN


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_healthz_is_open_and_tiny(client: FlaskClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json()["status"] == "ok"
    assert resp.get_json()["service"] == "rotation" and len(resp.data) < 300


def test_healthz_fails_with_the_reason_when_the_loop_stalls(client: FlaskClient, rotation: RotationService,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    rotation.start()
    assert client.get("/healthz").status_code == 200
    monkeypatch.setattr(rotation, "loop_age", lambda: 42.0)
    resp = client.get("/healthz")
    assert resp.status_code == 503 and "has not run for 42 s" in resp.get_json()["reasons"]["loop"]


def test_healthz_fails_when_the_state_dir_is_read_only_or_full(make_config: Any, clock: FakeClock,
                                                                 mock_factory: Any, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", read_only=True) as ro, tmpfs(tmp_path / "full", size="1m", fill_to_kb=1024) as full:
        for state, key, reason in ((ro, "storage", "not writable"), (full, "disk", "disk nearly full")):
            cfg = make_config(unit={"state_dir": str(state)}, web={"teacher_pin": "1234"})
            with RotationService(cfg, clock) as svc:
                resp = create_app(cfg, svc).test_client().get("/healthz")
                assert resp.status_code == 503 and reason in resp.get_json()["reasons"][key]


def test_metrics_need_the_token_and_parse(client: FlaskClient, rotation: RotationService, clock: FakeClock) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    rotation.engine.start(make_plan(work_minutes=1, warning=10))
    rotation.run_once()  # the loop now waits for the warning at +50 s
    clock.advance(50.002)  # the warning boundary passed 2 ms ago: the loop shows its cue now
    rotation.run_once()
    resp = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    fams = _families(resp.get_data(as_text=True))
    phase = {s.labels["phase"]: s.value for s in fams["classroom_edge_rotation_phase"].samples}
    assert phase["warning"] == 1.0 and phase["work"] == 0.0
    assert fams["classroom_edge_rotation_round"].samples[0].value == 1
    latency = {s.name: s.value for s in fams["classroom_edge_cue_latency_seconds"].samples if not s.labels
               or "le" not in s.labels}
    assert latency["classroom_edge_cue_latency_seconds_count"] == 1
    assert latency["classroom_edge_cue_latency_seconds_sum"] == pytest.approx(0.002, abs=1e-6)
    assert "classroom_edge_disk_free_bytes" in fams and "classroom_edge_clock_synchronised" in fams
