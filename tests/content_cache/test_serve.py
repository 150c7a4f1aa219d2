"""`edge cache serve` (foreground, clean SIGTERM shutdown), the demo pack, `start_cache`, `edge cache check`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from content_cache.server import start_cache
from edge.config import parse_config
from tests.net import free_port


async def test_serve_runs_demo_pack_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[cache]\nhost = "127.0.0.1"\nport = {port}\ndir = "{tmp_path / "cache"}"\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge", "cache", "serve", "--config", str(cfg),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        assert proc.stdout is not None
        assert b"serving on" in await proc.stdout.readline()
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/demo/index.html") as r:
                assert r.status == 200 and r.headers["X-Cache"] == "MISS"
                assert b"fractions.html" in await r.read()
            async with s.get(f"http://127.0.0.1:{port}/demo/video/clip.bin", headers={"Range": "bytes=0-"}) as r:
                assert r.status == 206 and len(await r.read()) == 3 * 1024 * 1024
            async with s.get(f"http://127.0.0.1:{port}/demo/") as r:
                assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err
        assert b"lesson cache stopped" in out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_start_cache_binds_config_host_and_port(tmp_path: Path) -> None:
    port = free_port()
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "l.html").write_text("<p>hi</p>")
    config = parse_config({"cache": {"host": "127.0.0.1", "port": port, "dir": str(tmp_path / "c"),
                                     "origins": {"usb": pack.as_uri()}}}, "t.toml")
    runner = await start_cache(config)
    try:
        async with aiohttp.ClientSession() as s:
            for label in ("MISS", "HIT"):
                async with s.get(f"http://127.0.0.1:{port}/usb/l.html") as r:
                    assert (r.status, r.headers["X-Cache"], await r.text()) == (200, label, "<p>hi</p>")
            async with s.get(f"http://127.0.0.1:{port}/usb/nope.html") as r:
                assert r.status == 404
    finally:
        await runner.cleanup()


def test_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[cache]\ndir = "{tmp_path / "cache"}"\n')
    (tmp_path / "cache" / "tmp").mkdir(parents=True)
    (tmp_path / "cache" / "tmp" / "999999999.x.part").write_bytes(b"half")
    assert main(["cache", "check", "--config", str(cfg)]) == 0
    assert "0 objects ok, 1 temp files removed" in capsys.readouterr().out
