"""Fixtures for the image tests: a small image of the Raspberry Pi OS layout made by the build's own disk stage
(genimage: MBR, FAT32 bootfs, ext4 rootfs) and, for tests marked `image`, the image `make image` built."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE_BUILD = REPO / "image_build"
TOOLS = ("genimage", "mcopy", "mkfs.fat", "mke2fs", "debugfs", "e2fsck")


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    assert not missing, f"missing {missing}: run `make image-deps` (Debian packages; CI installs them)"


def make_rpi_layout_image(dest: Path, work: Path, extra_root: dict[str, bytes] | None = None) -> Path:
    """A small disk image with the layout `make image` produces, made by image_build/stages/disk.sh."""
    require_tools(*TOOLS)
    root = work / "root"
    fw = root / "boot/firmware"
    fw.mkdir(parents=True)
    (fw / "config.txt").write_text("[all]\narm_64bit=1\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n")
    (fw / "cmdline.txt").write_text("console=tty0 root=PARTUUID=c1a55ed9-02 rw fsck.repair=yes rootwait\n")
    (fw / "start4.elf").write_bytes(bytes(range(256)) * 4096)  # 1 MiB of firmware-like bytes
    (fw / "bcm2711-rpi-4-b.dtb").write_bytes(b"\xd0\x0d\xfe\xed" + b"\x01" * 40000)
    files = {"etc/os-release": b'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nID=raspbian\n',
             "etc/passwd": b"root:x:0:0:root:/root:/bin/bash\n", "etc/group": b"root:x:0:\ngpio:x:997:\n",
             "etc/hostname": b"raspberrypi\n", "usr/bin/python3.11": b"\x7fELF fake interpreter\n",
             **(extra_root or {})}
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "usr/lib/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/multi-user.target.wants").mkdir(parents=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000", "TMPDIR": str(work)}
    out = subprocess.run(["bash", str(IMAGE_BUILD / "stages/disk.sh"), str(root), str(dest)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return dest


@pytest.fixture(scope="session")
def rpi_image_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("rpi-layout")
    return make_rpi_layout_image(work / "rpi-layout.img", work)


@pytest.fixture
def rpi_image(rpi_image_master: Path, tmp_path: Path) -> Path:
    """A fresh copy (sparse) of the small image for one test."""
    from edge.image.copy import copy_image

    dest = tmp_path / "base.img"
    copy_image(rpi_image_master, dest)
    return dest


def built_image_path() -> Path | None:
    env = os.environ.get("EDGE_IMAGE")
    if env:
        return Path(env)
    found = sorted((IMAGE_BUILD / "out").glob("classroom-edge-*-arm64.img"))
    return found[-1] if found and os.environ.get("EDGE_IMAGE_TESTS") == "1" else None


@pytest.fixture(scope="session")
def built_image() -> Iterator[Path]:
    """The image from `make image` (tests marked `image`; `make image-test` runs them)."""
    path = built_image_path()
    if path is None:
        pytest.skip("needs the image `make image` builds: run `make image-test`")
    assert path.exists(), f"{path} does not exist: run `make image`"
    yield path


@pytest.fixture(scope="session")
def built_root() -> Path:
    """The root tree the last `make image` assembled (image_build/build/root)."""
    if built_image_path() is None:
        pytest.skip("needs the image `make image` builds: run `make image-test`")
    root = IMAGE_BUILD / "build/root"
    assert (root / "opt/classroom-edge/current/bin/edge").exists(), "image_build/build/root is not a built root"
    return root
