"""The systemd units: they verify cleanly against a root tree and stay hardened (exposure <= 2.0)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

# the services; the image's oneshot units (first-boot provisioning, root growth) have their tests in tests/image_build/
ONESHOTS = {"classroom-edge-firstboot.service", "classroom-edge-growroot.service"}
UNITS = sorted(u for u in (Path(__file__).resolve().parent.parent / "systemd").glob("*.service")
               if u.name not in ONESHOTS)
ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root tree with the image's install location, so verify can check ExecStart."""
    assert ANALYZE, "systemd-analyze is missing: .ci/run installs Debian's systemd package"
    exe = tmp_path / "opt/classroom-edge/current/bin/edge"  # the release layout: releases/<version> + current link
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    return tmp_path


def verify(root: Path, unit: Path) -> subprocess.CompletedProcess[str]:
    shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    assert ANALYZE
    return subprocess.run([ANALYZE, "verify", f"--root={root}", "--recursive-errors=no",
                           f"/etc/systemd/system/{unit.name}"], capture_output=True, text=True, timeout=60)


def test_there_is_one_unit_per_service() -> None:
    assert [u.name for u in UNITS] == ["classroom-edge-cache.service", "classroom-edge-fleet.service",
                                       "classroom-edge-mastery.service", "classroom-edge-rotation.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies_without_any_warning(root: Path, unit: Path) -> None:
    # verify exits 0 on unknown keys and bad values: any output at all is a failure
    out = verify(root, unit)
    assert (out.returncode, out.stderr, out.stdout) == (0, "", "")


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_is_hardened(unit: Path) -> None:
    assert ANALYZE, "systemd-analyze is missing"
    out = subprocess.run([ANALYZE, "security", "--offline=true", "--threshold=20", str(unit)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout[-2000:]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_is_type_notify_with_a_watchdog(unit: Path) -> None:
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text
    settings = [line for line in text.splitlines() if not line.startswith("#")]
    if "SupplementaryGroups=gpio" in settings:
        assert "PrivateDevices=yes" not in settings  # it would hide /dev/gpiochip*
        assert "DeviceAllow=char-gpiochip rw" in settings


def test_a_broken_unit_is_caught(root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "classroom-edge-bad.service"
    bad.write_text(UNITS[0].read_text().replace("Restart=on-failure", "Restart=sometimes"))
    assert verify(root, bad).stderr != ""


def _syscall_groups() -> dict[str, set[str]]:
    """systemd's own syscall groups (`systemd-analyze syscall-filter`), each expanded to syscall names."""
    assert ANALYZE
    out = subprocess.run([ANALYZE, "syscall-filter"], capture_output=True, text=True, timeout=60, check=True).stdout
    raw: dict[str, list[str]] = {}
    current = ""
    for line in out.splitlines():
        word = line.strip()
        if line.startswith("@"):
            current = word
            raw[current] = []
        elif current and word and not word.startswith("#"):
            raw[current].append(word)

    def expand(name: str) -> set[str]:
        return set().union(*(expand(x) if x.startswith("@") else {x} for x in raw.get(name, [])))

    return {g: expand(g) for g in raw}


def allowed_syscalls(unit_text: str) -> set[str]:
    """What a unit's SystemCallFilter= lines allow, applied in order as systemd does: the first (an allow-list)
    sets the list, a later `~` line removes from it, a later plain line adds to it."""
    groups = _syscall_groups()
    allowed: set[str] = set()
    for line in unit_text.splitlines():
        if not line.startswith("SystemCallFilter="):
            continue
        value = line.split("=", 1)[1]
        deny = value.startswith("~")
        names = set().union(*(groups[x] if x.startswith("@") else {x} for x in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


def test_the_rotation_unit_lets_the_cue_thread_take_real_time_priority() -> None:
    """rotation.realtime_priority (SCHED_FIFO 10 by default) needs the RLIMIT, RestrictRealtime=no and the
    sched_setscheduler syscall, which the @resources deny-list took away (the thread then ran unprioritised)."""
    from edge.config import parse_config

    unit = (Path(__file__).resolve().parent.parent / "systemd" / "classroom-edge-rotation.service").read_text()
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
                    and not line.startswith("SystemCallFilter="))
    assert settings["RestrictRealtime"] == "no"
    assert int(settings["LimitRTPRIO"]) >= parse_config({}).rotation.realtime_priority
    allowed = allowed_syscalls(unit)
    assert "sched_setscheduler" in allowed
    assert not {"setpriority", "sched_setaffinity", "setrlimit", "reboot"} & allowed  # the rest stays denied
