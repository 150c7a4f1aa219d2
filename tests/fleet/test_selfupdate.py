"""`edge self-update` against a temporary prefix, run as the real command: releases are real wheels installed
into real venvs; the restart command (tests/fleet/restart_services.py) starts each release's health
servers on 127.0.0.1 like systemd starts the services on a unit."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fleet.releases import build_wheel
from tests.fleet.restart_services import stop

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Unit:
    prefix: Path
    state: Path
    wheels: Path
    ports: list[int]

    def restart_command(self, *extra: str) -> str:
        ports = ",".join(map(str, self.ports))
        return f"{sys.executable} -m tests.fleet.restart_services --state {self.state} --ports {ports} " + \
            " ".join(extra)

    def argv(self, *args: str, restart: str | None = None, timeout: float = 15) -> list[str]:
        out = [sys.executable, "-m", "edge", "self-update", *args, "--prefix", str(self.prefix),
               "--restart-command", restart or self.restart_command(), "--health-timeout", str(timeout)]
        for port in self.ports:
            out += ["--health-url", f"http://127.0.0.1:{port}/healthz"]
        return out

    def update(self, *args: str, restart: str | None = None, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args, restart=restart, timeout=timeout), capture_output=True, text=True,
                              cwd=ROOT, timeout=300)

    def wheel(self, version: str, healthy: bool = True) -> str:
        return str(build_wheel(self.wheels / version, version, healthy))

    def current(self) -> str:
        return os.readlink(self.prefix / "current")

    def releases(self) -> list[str]:
        return sorted(p.name for p in (self.prefix / "releases").iterdir())

    def serving(self) -> set[str]:
        """The version every health server answers with (one each)."""
        import urllib.error
        import urllib.request

        versions = set()
        for port in self.ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                    versions.add(json.loads(resp.read())["version"])
            except urllib.error.HTTPError as e:
                versions.add("unhealthy " + json.loads(e.read())["version"])
        return versions

    def runs(self, version: str) -> bool:
        edge = self.prefix / "current" / "bin" / "edge"
        out = subprocess.run([str(edge), "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip() == f"edge {version}"


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[Unit]:
    u = Unit(tmp_path / "opt", tmp_path / "services", tmp_path / "wheels", [free_port() for _ in range(3)])
    yield u
    stop(u.state / "pids")


@pytest.fixture
def installed(unit: Unit) -> Unit:
    """A unit running release 1.0.0 (installed by self-update itself on an empty prefix)."""
    out = unit.update(unit.wheel("1.0.0"))
    assert out.returncode == 0, out.stderr
    assert unit.current() == "releases/1.0.0" and unit.serving() == {"1.0.0"}
    return unit


def test_good_releases_switch_and_only_the_last_two_are_kept(installed: Unit) -> None:
    u = installed
    out = u.update(u.wheel("2.0.0"))
    assert out.returncode == 0, out.stderr
    assert "2.0.0 is healthy after" in out.stdout and out.stdout.rstrip().endswith("edge self-update: updated")
    assert u.current() == "releases/2.0.0" and u.serving() == {"2.0.0"} and u.runs("2.0.0")
    assert u.releases() == ["1.0.0", "2.0.0"]
    assert json.loads((u.prefix / "releases/2.0.0/.release.json").read_text())["version"] == "2.0.0"
    out = u.update(u.wheel("3.0.0"))
    assert out.returncode == 0, out.stderr
    assert u.releases() == ["2.0.0", "3.0.0"] and "removing old release 1.0.0" in out.stdout
    assert not (u.prefix / "update.json").exists()
    again = u.update(u.wheel("3.0.0"))
    assert again.returncode == 0 and again.stdout.rstrip().endswith("unchanged")
    assert (u.state / "restarts.log").read_text().split() == ["1.0.0", "2.0.0", "3.0.0"]


def test_sick_releases_roll_back_and_interrupted_updates_leave_a_working_release(installed: Unit) -> None:
    # (one test, one prefix: every release built here costs a venv, ~10-20 s on a loaded 2-core machine)
    u = installed

    # 1. a release whose services fail their health check: rolled back by itself, and deleted
    out = u.update(u.wheel("2.0.0", healthy=False), timeout=3)
    assert out.returncode == 1
    assert out.stderr.startswith("edge: error: release 2.0.0 was not healthy within 3 s (")
    assert "HTTP 503" in out.stderr and "rolled back to 1.0.0, which is healthy again" in out.stderr
    assert u.current() == "releases/1.0.0" and u.serving() == {"1.0.0"} and u.runs("1.0.0")
    assert u.releases() == ["1.0.0"] and not (u.prefix / "update.json").exists()
    assert (u.state / "restarts.log").read_text().split() == ["1.0.0", "2.0.0", "1.0.0"]

    # 2. SIGKILL right after the switch (the restart command kills `edge self-update`)
    good = u.wheel("2.0.1")
    out = u.update(good, restart=u.restart_command("--kill-parent"))
    assert out.returncode == -signal.SIGKILL
    # the link names a complete release: whatever starts now runs
    assert u.current() == "releases/2.0.1" and u.runs("2.0.1")
    journal = json.loads((u.prefix / "update.json").read_text())
    assert (journal["from"], journal["to"], journal["state"]) == ("1.0.0", "2.0.1", "switching")
    rec = subprocess.run(u.argv("--recover"), capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert rec.returncode == 0, rec.stderr
    assert "recovered an interrupted update to 2.0.1: back to 1.0.0" in rec.stdout
    assert u.current() == "releases/1.0.0" and u.serving() == {"1.0.0"}
    assert not (u.prefix / "update.json").exists()

    # 3. the unconfirmed release stays installed and is reused; a restart command that fails rolls back too
    out = u.update(good, restart="false")
    assert out.returncode == 1 and "release 2.0.1 is already installed" in out.stdout
    assert "restart command (false) failed (exit 1)" in out.stderr
    assert u.current() == "releases/1.0.0" and u.releases() == ["1.0.0"]

    # 4. SIGKILL in the middle of the install: the old release stays current and serving
    wheel = u.wheel("2.0.2")
    proc = subprocess.Popen(u.argv(wheel), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = u.prefix / "releases" / "2.0.2" / "bin"
    deadline = time.monotonic() + 60
    while not target.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.kill()
    proc.wait(30)
    assert target.exists(), "the venv was never started: the kill did not land mid-install"
    assert not (u.prefix / "releases/2.0.2/.release.json").exists()
    assert u.current() == "releases/1.0.0" and u.runs("1.0.0") and u.serving() == {"1.0.0"}
    status = json.loads(subprocess.run(u.argv("--status"), capture_output=True, text=True, cwd=ROOT,
                                       timeout=60).stdout)
    assert {r["version"]: r["complete"] for r in status["releases"]} == {"1.0.0": True, "2.0.2": False}
    out = u.update(wheel)  # the half-built release is rebuilt from scratch
    assert out.returncode == 0, out.stderr
    assert u.current() == "releases/2.0.2" and u.serving() == {"2.0.2"} and u.releases() == ["1.0.0", "2.0.2"]


def test_refuses_what_is_not_a_release(unit: Unit, tmp_path: Path) -> None:
    other = tmp_path / "requests-2.0.0-py3-none-any.whl"
    other.write_bytes(b"PK")
    out = unit.update(str(other))
    assert out.returncode == 1 and "is not a classroom-edge release" in out.stderr
    out = unit.update(str(tmp_path / "classroom_edge-9.0.0-py3-none-any.whl"))
    assert out.returncode == 1 and "no such file" in out.stderr
    out = unit.update(str(tmp_path / "classroom_edge-..-py3-none-any.whl"))
    assert out.returncode == 1 and "must start with a digit" in out.stderr


def test_one_update_at_a_time(unit: Unit) -> None:
    import fcntl

    unit.prefix.mkdir(parents=True)
    with (unit.prefix / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        out = unit.update(unit.wheel("2.0.0"))
    assert out.returncode == 1 and "another self-update is running" in out.stderr
    assert not (unit.prefix / "releases").exists()
