"""sd_notify against a real AF_UNIX datagram socket, as systemd would listen."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from edge.serving.sdnotify import notify, watchdog_interval


def test_notify_sends_datagrams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert notify("READY=1") is True
        assert server.recv(100) == b"READY=1"


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"edge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("WATCHDOG=1")
        assert server.recv(100) == b"WATCHDOG=1"


def test_without_systemd_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert notify("READY=1") is False
    assert watchdog_interval() is None


def test_watchdog_interval_is_half_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval() is None


@pytest.mark.parametrize(
    ("command", "section", "extra"),
    [
        (["mastery", "serve"], "mastery", 'class_key = "k"\n'),
        (["cache", "serve"], "cache", ""),
        (["cache", "serve"], "cache", "workers = 2\n"),
        (["rotation", "serve"], "web", ""),
        (["fleet", "serve"], "fleet", ""),
    ],
    ids=["mastery", "cache", "cache-2-workers", "rotation", "fleet"],
)
def test_serve_tells_systemd_ready_feeds_the_watchdog_and_stops(tmp_path: Path, command: list[str], section: str,
                                                                extra: str) -> None:
    """What the Type=notify units rely on: READY once listening, WATCHDOG pings, STOPPING, exit 0."""
    import signal
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[unit]\nstate_dir = "{tmp_path}/state"\n[{section}]\nhost = "127.0.0.1"\nport = {port}\n{extra}')
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(30)
        proc = subprocess.Popen([sys.executable, "-m", "edge", *command, "--config", str(cfg)],
                                env={**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000",
                                     "GPIOZERO_PIN_FACTORY": "mock"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            got = [server.recv(100) for _ in range(3)]
            assert got == [b"READY=1", b"WATCHDOG=1", b"WATCHDOG=1"]
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # it listens once it said READY
            proc.send_signal(signal.SIGTERM)
            while (msg := server.recv(100)) == b"WATCHDOG=1":
                pass
            assert msg == b"STOPPING=1"
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()
            proc.wait()
