"""customise-rpios on an image of the Raspberry Pi OS layout: the layer lands in the ext4 root (modes, owners,
links), the FAT side gets only the example card file, the filesystem stays clean; a full root is grown first."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path

import pytest

from edge.image.fat import FatVolume
from edge.image.mbr import read_layout
from tests.image_build.conftest import IMAGE_BUILD

TOOL = IMAGE_BUILD / "customise-rpios"


def debugfs(image: Path, cmd: str) -> str:
    off = read_layout(image).root.start
    out = subprocess.run(["debugfs", "-R", cmd, f"{image}?offset={off}"], capture_output=True, text=True, check=True)
    return out.stdout


def e2fsck_clean(image: Path) -> None:
    off = read_layout(image).root.start
    out = subprocess.run(["e2fsck", "-fn", f"{image}?offset={off}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def make_layer(tmp: Path, big: int = 0) -> Path:
    src = tmp / "layer"
    release = src / "opt/classroom-edge/releases/9.9"
    (release / "bin").mkdir(parents=True)
    (release / "bin/edge").write_text("#!/bin/sh\necho edge\n")
    (release / "bin/edge").chmod(0o755)
    (release / "lib.txt").write_bytes(b"x" * 10000)
    if big:
        (release / "big.bin").write_bytes(hashlib.sha256(b"seed").digest() * (big // 32))
    (src / "opt/classroom-edge/current").symlink_to("releases/9.9")
    (src / "usr/lib/systemd/system").mkdir(parents=True)
    (src / "usr/lib/systemd/system/classroom-edge-x.service").write_text("[Service]\nExecStart=/bin/true\n")
    wants = src / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "classroom-edge-x.service").symlink_to("/usr/lib/systemd/system/classroom-edge-x.service")
    layer = tmp / "layer.tar"
    with tarfile.open(layer, "w") as t:
        for p in sorted(src.rglob("*")):
            info = t.gettarinfo(str(p), str(p.relative_to(src)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if p.is_file() and not p.is_symlink():
                with open(p, "rb") as f:
                    t.addfile(info, f)
            else:
                t.addfile(info)
    return layer


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=600)


def test_the_layer_lands_in_the_root_filesystem(rpi_image: Path, tmp_path: Path) -> None:
    layer = make_layer(tmp_path)
    fat_before = {n: FatVolume(rpi_image, read_layout(rpi_image).boot).read(n)
                  for n in FatVolume(rpi_image, read_layout(rpi_image).boot).names()}
    out = run(rpi_image, layer, "-o", tmp_path / "custom.img")
    assert out.returncode == 0, out.stderr
    img = tmp_path / "custom.img"
    assert read_layout(img) == read_layout(rpi_image)  # room enough: the partitions are as they were
    e2fsck_clean(img)
    assert debugfs(img, "cat /opt/classroom-edge/releases/9.9/bin/edge") == "#!/bin/sh\necho edge\n"
    stat = debugfs(img, "stat /opt/classroom-edge/releases/9.9/bin/edge")
    assert "Mode:  0755" in stat and "User:     0   Group:     0" in stat
    assert "Fast link dest: \"releases/9.9\"" in debugfs(img, "stat /opt/classroom-edge/current")
    assert "/usr/lib/systemd/system/classroom-edge-x.service" in debugfs(
        img, "stat /etc/systemd/system/multi-user.target.wants/classroom-edge-x.service")
    assert debugfs(img, "cat /etc/hostname") == "raspberrypi\n"  # what was there is untouched
    fat = FatVolume(img, read_layout(img).boot)
    assert set(fat.names()) == set(fat_before) | {"classroom-edge.example.toml"}
    assert all(fat.read(n) == data for n, data in fat_before.items())
    # a second run (an update to the same image) replaces the files, no error for what exists
    again = run(img, layer, "--in-place")
    assert again.returncode == 0, again.stderr
    e2fsck_clean(img)


def test_a_full_root_is_grown_first(rpi_image: Path, tmp_path: Path) -> None:
    layer = make_layer(tmp_path, big=300 << 20)  # more than the small image's free space
    before = read_layout(rpi_image)
    out = run(rpi_image, layer, "-o", tmp_path / "custom.img")
    assert out.returncode == 0, out.stderr
    img = tmp_path / "custom.img"
    after = read_layout(img)
    assert after.boot == before.boot and after.root.start == before.root.start
    assert after.root.size > before.root.size  # by what was missing, plus 64 MiB to spare
    assert img.stat().st_size >= after.root.end
    e2fsck_clean(img)
    dumped = tmp_path / "big.out"
    off = after.root.start
    subprocess.run(["debugfs", "-R", f"dump /opt/classroom-edge/releases/9.9/big.bin {dumped}",
                    f"{img}?offset={off}"], check=True, capture_output=True)
    assert dumped.read_bytes() == hashlib.sha256(b"seed").digest() * ((300 << 20) // 32)


def test_not_a_raspberry_pi_os_image_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * 8192)
    out = run(junk, make_layer(tmp_path), "-o", tmp_path / "c.img")
    assert out.returncode == 1 and "customise-rpios: error:" in out.stderr and "no MBR" in out.stderr
    assert not (tmp_path / "c.img").exists()


@pytest.mark.image
def test_the_real_layer_on_an_image_of_the_raspberry_pi_os_layout(rpi_image: Path, built_image: Path,
                                                                  tmp_path: Path) -> None:
    layer = built_image.with_name(built_image.name.replace(".img", "-layer.tar"))
    out = run(rpi_image, layer, "-o", tmp_path / "custom.img")
    assert out.returncode == 0, out.stderr
    img = tmp_path / "custom.img"
    e2fsck_clean(img)
    listing = debugfs(img, "ls -p /opt/classroom-edge/current/bin")
    assert "/edge/" in listing and "/python/" in listing
    assert "classroom-edge-firstboot.service" in debugfs(img, "ls /etc/systemd/system/multi-user.target.wants")
    assert "PasswordAuthentication no" in debugfs(img, "cat /etc/ssh/sshd_config.d/50-classroom-edge.conf")
