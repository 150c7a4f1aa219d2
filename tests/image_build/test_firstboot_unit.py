"""The image's oneshot units (first-boot provisioning, root growth): verify cleanly, exposure <= 2.0 though they
run as root, ordered before the services."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.image_build.conftest import REPO

UNIT = REPO / "systemd/classroom-edge-firstboot.service"
ONESHOTS = [UNIT, REPO / "systemd/classroom-edge-growroot.service"]
SERVICES = ("classroom-edge-rotation.service", "classroom-edge-cache.service", "classroom-edge-mastery.service")


@pytest.mark.parametrize("unit", ONESHOTS, ids=lambda u: u.name)
def test_unit_verifies_without_any_warning(tmp_path: Path, unit: Path) -> None:
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: .ci/run installs Debian's systemd package"
    py = tmp_path / "opt/classroom-edge/current/bin/python"
    py.parent.mkdir(parents=True)
    py.write_text("#!/bin/sh\n")
    py.chmod(0o755)
    (tmp_path / "bin").mkdir()
    shutil.copy("/bin/hostname", tmp_path / "bin/hostname")
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(unit, tmp_path / "etc/systemd/system" / unit.name)
    out = subprocess.run(["systemd-analyze", "verify", f"--root={tmp_path}", "--recursive-errors=no",
                          f"/etc/systemd/system/{unit.name}"], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr, out.stdout) == (0, "", "")


@pytest.mark.parametrize("unit", ONESHOTS, ids=lambda u: u.name)
def test_unit_is_hardened_though_it_runs_as_root(unit: Path) -> None:
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", str(unit)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout[-2000:]


def test_ordered_before_the_services_and_sshd_every_boot() -> None:
    lines = UNIT.read_text().splitlines()
    before = " ".join(line.split("=", 1)[1] for line in lines if line.startswith("Before="))
    for service in (*SERVICES, "ssh.service"):
        assert service in before.split()
    assert "Type=oneshot" in lines and "WantedBy=multi-user.target" in lines
    assert not any(line.startswith("ConditionFirstBoot") for line in lines)  # every boot: an edited card re-provisions
    # its only privileged step is applying /etc/hostname; the provisioning itself is sandboxed
    assert [line for line in lines if line.startswith("Exec") and "=+" in line] == [
        "ExecStartPost=+/bin/hostname --file /etc/hostname"]
    assert "ExecStart=/opt/classroom-edge/current/bin/python -m edge.image.firstboot" in lines


def test_growroot_runs_before_the_services_with_only_block_devices() -> None:
    lines = (REPO / "systemd/classroom-edge-growroot.service").read_text().splitlines()
    before = " ".join(line.split("=", 1)[1] for line in lines if line.startswith("Before="))
    assert all(s in before.split() for s in SERVICES)
    assert "DevicePolicy=closed" in lines and "PrivateNetwork=yes" in lines
    assert {line for line in lines if line.startswith("DeviceAllow=")} == {
        f"DeviceAllow=block-{kind} rw" for kind in ("mmc", "sd", "virtblk", "blkext")}
