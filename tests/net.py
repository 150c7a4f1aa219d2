"""Network helpers for tests: a free loopback port, and waiting (bounded) for a process to listen."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    """A port nothing listens on right now (bind 0, read it back, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
                   timeout_s: float = 30.0, host: str = "127.0.0.1") -> None:
    """Until something accepts on host:port; fails when `proc` exits first or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listened on {host}:{port} within {timeout_s:g} s")
