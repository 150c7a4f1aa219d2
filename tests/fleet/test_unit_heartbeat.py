"""The unit's side of the fleet: its stable id, the heartbeat's new fields and the district token."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.fleet.identity import app_specific_id, unit_id
from edge.fleet.unitinfo import faults
from edge.sync.heartbeat import build_heartbeat, send_heartbeat

MACHINE_ID = "0123456789abcdef0123456789abcdef"


def test_unit_id_is_an_app_specific_hash_of_the_machine_id(make_config: Any, tmp_path: Path) -> None:
    mid = tmp_path / "machine-id"
    mid.write_text(MACHINE_ID + "\n")
    cfg = make_config()
    first = unit_id(cfg, mid)
    assert first == unit_id(cfg, mid) == app_specific_id(MACHINE_ID)
    assert len(first) == 32 and MACHINE_ID not in first and int(first, 16) >= 0
    mid.write_text("fedcba9876543210fedcba9876543210\n")
    assert unit_id(cfg, mid) != first
    assert unit_id(make_config(unit={"id": "room-12-lincoln"}), mid) == "room-12-lincoln"


def test_unit_id_without_a_machine_id_is_generated_once(make_config: Any, tmp_path: Path) -> None:
    cfg = make_config()
    empty = tmp_path / "empty-machine-id"
    empty.write_text("\n")  # what an image ships before first boot
    generated = unit_id(cfg, empty)
    assert (cfg.state_dir / "unit-id").read_text().strip() == generated
    assert unit_id(cfg, tmp_path / "missing") == generated


def test_unit_id_where_nothing_can_be_written_is_stable_for_the_process(make_config: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = make_config(unit={"state_dir": str(blocker / "state")})  # under a regular file: cannot be created
    first = unit_id(cfg, tmp_path / "missing")
    assert unit_id(cfg, tmp_path / "missing") == first and len(first) == 32


def test_faults_name_what_it_should() -> None:
    assert faults({"enabled": True, "last_error": None, "quarantined": 0}, kernel="compiled",
                  disk=(50, 100), synced=True) == []
    got = faults({"enabled": True, "last_error": "HTTP 503 from the LRS", "quarantined": 2}, kernel="python",
                 disk=(4, 100), synced=False)
    assert got == ["sync: HTTP 503 from the LRS", "sync: 2 statement(s) quarantined (edge sync status)",
                   "clock: not synchronised (NTP)", "disk: only 4% free on the state file system",
                   "mastery: compiled BKT kernel missing (pure-Python twin in use)"]


def test_heartbeat_document_has_what_the_fleet_page_shows(make_config: Any) -> None:
    cfg = make_config(unit={"id": "unit-1", "room": "Room 12", "school": "Lincoln"}, web={"port": 8001})
    doc = build_heartbeat(cfg, kernel="compiled", pin_factory="mock")
    assert doc["unit"] == {"id": "unit-1", "room": "Room 12", "school": "Lincoln", "hostname": socket.gethostname()}
    assert doc["ports"] == {"web": 8001, "cache": 8080, "mastery": 8090}
    assert doc["backlog"] == 0 and doc["oldest_unsent_age_s"] is None
    assert isinstance(doc["disk_free_bytes"], int) and doc["disk_total_bytes"] >= doc["disk_free_bytes"] > 0
    assert doc["clock_synced"] in (True, False, None)
    assert isinstance(doc["faults"], list)


async def test_heartbeat_sends_the_district_token_and_follows_no_redirect(make_config: Any) -> None:
    seen: list[tuple[str, str | None]] = []

    async def collector(request: web.Request) -> web.Response:
        seen.append(("collector", request.headers.get("Authorization")))
        return web.Response(status=204)

    async def moved(request: web.Request) -> web.Response:
        seen.append(("moved", request.headers.get("Authorization")))
        raise web.HTTPTemporaryRedirect(f"http://localhost:{port}/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(("elsewhere", request.headers.get("Authorization")))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/api/v1/heartbeat", collector)
    app.router.add_post("/moved", moved)
    app.router.add_post("/elsewhere", elsewhere)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        cfg = make_config(unit={"id": "unit-1"}, district={
            "heartbeat_url": f"http://127.0.0.1:{port}/api/v1/heartbeat",
            "heartbeat_token": "lincoln-token-0123456789", "lrs_url": f"http://127.0.0.1:{port}/xAPI",
            "lrs_token": "lrs-secret"})
        assert await send_heartbeat(cfg, build_heartbeat(cfg, kernel="compiled")) == 204
        assert seen == [("collector", "Bearer lincoln-token-0123456789")]
        moved_cfg = make_config(unit={"id": "unit-1"}, district={
            "heartbeat_url": f"http://127.0.0.1:{port}/moved", "heartbeat_token": "lincoln-token-0123456789"})
        assert await send_heartbeat(moved_cfg, build_heartbeat(moved_cfg, kernel="compiled")) == 307
        assert seen[1:] == [("moved", "Bearer lincoln-token-0123456789")]  # never to the redirect's target
    finally:
        await runner.cleanup()


def test_edge_config_check(tmp_path: Path) -> None:
    import subprocess
    import sys

    good = tmp_path / "edge.toml"
    good.write_text('[unit]\nroom = "Room 12"\n[fleet.tokens]\n"Lincoln" = "lincoln-token-0123456789"\n')
    out = subprocess.run([sys.executable, "-m", "edge", "config", "check", str(good)], capture_output=True, text=True,
                         timeout=60)
    assert (out.returncode, out.stdout) == (0, f"{good}: ok\n")
    bad = tmp_path / "bad.toml"
    bad.write_text("[cache]\nport = 99999\n")
    out = subprocess.run([sys.executable, "-m", "edge", "config", "check", str(bad)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert out.stderr == f"edge: error: {bad}: cache.port: must be a TCP port 0..65535\n"
