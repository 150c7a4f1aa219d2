"""Every `serve` command answers a taken port the same way: `edge: error: cannot listen on HOST:PORT: ...`,
exit 1, no traceback (the serving layer's ListenError)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SERVES = [
    (["cache", "serve"], "cache", ""),
    (["cache", "serve"], "cache", "workers = 2\n"),
    (["mastery", "serve"], "mastery", 'class_key = "k"\n'),
    (["rotation", "serve"], "web", ""),
    (["run", "--no-demo"], "web", ""),
]


@pytest.mark.parametrize(("command", "section", "extra"), SERVES,
                         ids=["cache", "cache-2-workers", "mastery", "rotation", "run"])
def test_a_taken_port_is_a_clear_error(tmp_path: Path, command: list[str], section: str, extra: str) -> None:
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        free = {}
        for other in ("web", "cache", "mastery"):  # `edge run` starts all three: the others on free ports
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                free[other] = s.getsockname()[1]
        free[section] = port
        cfg = tmp_path / "edge.toml"
        body = f'[unit]\nstate_dir = "{tmp_path}/state"\n'
        for name, p in free.items():
            body += f'[{name}]\nhost = "127.0.0.1"\nport = {p}\n' + (extra if name == section else "")
        cfg.write_text(body)
        proc = subprocess.run([sys.executable, "-m", "edge", *command, "--config", str(cfg)], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"})
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"edge: error: cannot listen on 127.0.0.1:{port}: ") or (
        command[0] == "run" and f"\nedge: error: cannot listen on 127.0.0.1:{port}: " in proc.stderr)
    assert "Traceback" not in proc.stderr
