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
    exe = tmp_path / "opt/classroom-edge/current/bin/edge"
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
    assert [u.name for u in UNITS] == ["classroom-edge-cache.service", "classroom-edge-mastery.service",
                                       "classroom-edge-rotation.service"]


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
