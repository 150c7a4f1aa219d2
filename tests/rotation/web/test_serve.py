"""Serving with waitress: WebServer start/stop, and `edge rotation serve` until SIGTERM, as scripts run it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from flask import Flask

from edge.rotation.web.server import WebServer


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        data: dict[str, object] = json.load(resp)
        return data


def test_web_server_serves_and_stops_promptly(app: Flask) -> None:
    server = WebServer(app, "127.0.0.1", 0).start()
    try:
        assert get_json(f"{server.url}/api/v1/rotation")["status"] == "idle"
    finally:
        t0 = time.monotonic()
        server.close()
        assert time.monotonic() - t0 < 2
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", server.port))


def edge_serve(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edge", "rotation", "serve", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"})


def test_edge_web_serve_runs_until_sigterm(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[unit]\nstate_dir = "{tmp_path}/state"\n[web]\nhost = "127.0.0.1"\nport = 0\n')
    proc = edge_serve(cfg)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"pages on (http://127\.0\.0\.1:\d+)/", line)
        assert m, line + (proc.stderr.read() if proc.stderr else "")
        assert "teacher control is disabled" in line
        assert get_json(f"{m[1]}/api/v1/rotation")["status"] == "idle"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "edge: stopped" in proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
