"""The image `make image` built: the Raspberry Pi OS layout, boot and root contents (read without mounting),
the units verified against the real root, and the arm64 BKT kernel equal to its pure twin under qemu."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edge import __version__
from edge.image.fat import FatVolume
from edge.image.mbr import read_layout
from tests.image_build.conftest import IMAGE_BUILD, REPO

pytestmark = pytest.mark.image


def run(*args: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{args}: {out.stdout[-2000:]}{out.stderr[-2000:]}"
    return out.stdout


def test_name_and_partition_table(built_image: Path) -> None:
    assert built_image.name == f"classroom-edge-{__version__}-arm64.img"
    dump = run("sfdisk", "-d", str(built_image))
    assert "label: dos\n" in dump and "label-id: 0xc1a55ed9\n" in dump
    p1, p2 = [line for line in dump.splitlines() if line.startswith(str(built_image))]
    assert re.search(r"start=\s*8192, size=\s*524288, type=c, bootable", p1), p1  # 4 MiB aligned, 256 MiB FAT32
    assert "type=83" in p2
    assert read_layout(built_image).partuuid(2) == "c1a55ed9-02"


def test_boot_partition(built_image: Path) -> None:
    layout = read_layout(built_image)
    info = run("minfo", "-i", f"{built_image}@@{layout.boot.start}", "::")
    assert 'disk type="FAT32   "' in info and 'disk label="bootfs ' in info
    fat = FatVolume(built_image, layout.boot)
    names = fat.names()
    for wanted in ("config.txt", "cmdline.txt", "start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb",
                   "bcm2837-rpi-3-b-plus.dtb", "bcm2837-rpi-zero-2-w.dtb", "bootcode.bin"):
        assert wanted in names, names
    assert any(n.startswith("vmlinuz-") for n in names) and any(n.startswith("initrd.img-") for n in names)
    assert "root=PARTUUID=c1a55ed9-02" in fat.read("cmdline.txt").decode()
    assert "classroom-edge.toml" not in names  # personalised per card, never in the image


def _debugfs(image: Path, cmd: str) -> str:
    return run("debugfs", "-R", cmd, f"{image}?offset={read_layout(image).root.start}")


def test_root_filesystem(built_image: Path) -> None:
    off = read_layout(built_image).root.start
    run("e2fsck", "-fn", f"{built_image}?offset={off}")
    assert "Filesystem volume name:   rootfs" in run("dumpe2fs", "-h", f"{built_image}?offset={off}")
    fstab = _debugfs(built_image, "cat /etc/fstab")
    assert re.search(r"^PARTUUID=c1a55ed9-02\s+/\s+ext4", fstab, re.M)
    assert re.search(r"^PARTUUID=c1a55ed9-01\s+/boot/firmware\s+vfat", fstab, re.M)
    assert f'Fast link dest: "releases/{__version__}"' in _debugfs(built_image, "stat /opt/classroom-edge/current")
    # marked complete as `edge self-update` marks its releases, so the first update can roll back to it
    marker = json.loads(_debugfs(built_image, f"cat /opt/classroom-edge/releases/{__version__}/.release.json"))
    assert marker["version"] == __version__ and len(marker["wheel_sha256"]) == 64
    wants = _debugfs(built_image, "ls /etc/systemd/system/multi-user.target.wants")
    for unit in ("firstboot", "growroot", "rotation", "cache", "mastery"):
        assert f"classroom-edge-{unit}.service" in wants
    assert "chrony.service" in wants and "ssh.service" in wants
    group = _debugfs(built_image, "cat /etc/group")
    assert re.search(r"^gpio:x:\d+:", group, re.M) and re.search(r"^classroom-edge:x:\d+:", group, re.M)
    assert 'GROUP="gpio"' in _debugfs(built_image, "cat /etc/udev/rules.d/60-classroom-edge-gpio.rules")
    assert "Mode:  0750" in _debugfs(built_image, "stat /etc/classroom-edge")
    assert "ssh_host_" not in _debugfs(built_image, "ls /etc/ssh")  # every card makes its own at first boot
    assert _debugfs(built_image, "cat /etc/machine-id") == ""  # systemd makes it at first boot
    assert "PasswordAuthentication no" in _debugfs(built_image, "cat /etc/ssh/sshd_config.d/50-classroom-edge.conf")
    for exe in ("/usr/sbin/chronyd", "/usr/bin/python3.11", "/usr/local/bin/edge"):
        assert "Type: regular" in _debugfs(built_image, f"stat {exe}"), exe


def test_units_verify_against_the_built_root(built_root: Path) -> None:
    for unit in sorted((REPO / "systemd").glob("*.service")):
        out = subprocess.run(["systemd-analyze", "verify", f"--root={built_root}", "--recursive-errors=no",
                              f"/usr/lib/systemd/system/{unit.name}"], capture_output=True, text=True, timeout=120)
        assert (out.returncode, out.stderr) == (0, ""), (unit.name, out.stderr)
        assert (built_root / "usr/lib/systemd/system" / unit.name).read_text() == unit.read_text()


def test_arm64_kernel_equals_the_twin_under_qemu(built_root: Path) -> None:
    """The cross-compiled kernel in the image's venv, run by the image's arm64 python under qemu-user."""
    assert shutil.which("chroot")
    script = built_root / "tmp/check_kernel.py"
    shutil.copy(IMAGE_BUILD / "check_kernel.py", script)
    try:
        out = run("chroot", str(built_root), "/opt/classroom-edge/current/bin/python", "/tmp/check_kernel.py", "40")
    finally:
        script.unlink()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["equal"] is True and result["machine"] == "aarch64" and result["implementation"] == "compiled"
    assert result["kernel_file"].endswith("_bkt_c.cpython-311-aarch64-linux-gnu.so") and result["responses"] > 1000


def test_root_manifest_was_written(built_image: Path) -> None:
    manifest = built_image.with_name(built_image.name.replace(".img", "-root.manifest")).read_text()
    assert f"/opt/classroom-edge/releases/{__version__}/bin/edge\t" in manifest
    assert "\t0:0\tl releases/" in manifest
