"""`python -m edge.image.growroot`: grow the root partition and its ext4 filesystem to the end of the card.

A card is flashed with the image's ~1.4 GB root; the lesson cache needs the rest of the card. At every boot
(a no-op once grown): if the root is the last MBR partition and the disk has at least 16 MiB after it, its
table entry is rewritten to reach the end of the disk (4 MiB aligned), the kernel is told (`resizepart`) and
the mounted filesystem is grown online (`resize2fs`). Run by classroom-edge-growroot.service as root.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

from edge.exc import EdgeError
from edge.image.mbr import SECTOR, DiskLayout, read_layout

log = logging.getLogger("edge.image.growroot")
ALIGN = 4 << 20
MIN_GAIN = 16 << 20
MBR_LIMIT = 0xFFFFFFFF * SECTOR  # an MBR entry counts 32-bit sectors (2 TiB)


def new_root_size(layout: DiskLayout, disk_size: int, number: int) -> int | None:
    """The size partition `number` can grow to, or None if it is not the last one or would gain < 16 MiB."""
    part = next((p for p in layout.partitions if p.number == number), None)
    if part is None or part is not max(layout.partitions, key=lambda p: p.start):
        return None
    end = min(disk_size, part.start + MBR_LIMIT) // ALIGN * ALIGN
    return end - part.start if end - part.end >= MIN_GAIN else None


def write_partition_size(disk: Path, number: int, size: int) -> None:
    """Rewrite the MBR entry's sector count (its start stays), fsynced."""
    with open(disk, "r+b") as f:
        f.seek(446 + 16 * (number - 1) + 12)
        f.write(struct.pack("<I", size // SECTOR))
        f.flush()
        os.fsync(f.fileno())


def ext4_bytes(device: Path, offset: int = 0) -> int:
    """The size of the ext4 filesystem at `offset` of `device`, from its superblock (blocks count x block size)."""
    with open(device, "rb") as f:
        f.seek(offset + 1024)
        sb = f.read(1024)
    if sb[56:58] != b"\x53\xef":
        raise EdgeError(f"{device}: no ext4 superblock")
    lo: int = struct.unpack_from("<I", sb, 4)[0]
    log_block: int = struct.unpack_from("<I", sb, 24)[0]
    incompat: int = struct.unpack_from("<I", sb, 96)[0]
    hi: int = struct.unpack_from("<I", sb, 0x150)[0] if incompat & 0x80 else 0  # INCOMPAT_64BIT
    return ((hi << 32) | lo) * (1024 << log_block)


def root_partition() -> tuple[Path, Path, int]:
    """(partition device, whole-disk device, partition number) of the mounted root filesystem."""
    st = os.stat("/")
    sysdir = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}").resolve()
    number_file = sysdir / "partition"
    if not number_file.exists():
        raise EdgeError(f"the root filesystem is not on a partition ({sysdir.name})")
    return Path("/dev") / sysdir.name, Path("/dev") / sysdir.parent.name, int(number_file.read_text())


def grow() -> str:
    part, disk, number = root_partition()
    layout = read_layout(disk)
    with open(disk, "rb") as f:
        disk_size = f.seek(0, os.SEEK_END)
    size = new_root_size(layout, disk_size, number)
    old = next(p for p in layout.partitions if p.number == number).size
    cmds = []
    if size is not None:
        write_partition_size(disk, number, size)
        cmds.append(["resizepart", str(disk), str(number), str(size // SECTOR)])
    # also when an earlier boot grew the partition but not the filesystem (power cut, failure)
    if ext4_bytes(part) < (size or old) - MIN_GAIN:
        cmds.append(["resize2fs", str(part)])
    for cmd in cmds:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if out.returncode != 0:
            raise EdgeError(f"{' '.join(cmd)}: {(out.stderr or out.stdout).strip()}")
    if not cmds:
        return f"{part} already fills {disk}"
    return f"grew {part} to {(size or old) >> 20} MiB (the whole of {disk}; it was {old >> 20} MiB)"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        log.info("%s", grow())
    except EdgeError as e:
        print(f"edge: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
