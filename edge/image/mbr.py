"""The MBR partition table of an image file or a card's block device (read-only, no tools, no root)."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from edge.exc import EdgeError

SECTOR = 512
FAT_TYPES = {0x0B, 0x0C, 0x0E}  # FAT32 CHS, FAT32 LBA, FAT16 LBA
LINUX = 0x83


@dataclass(frozen=True)
class Partition:
    number: int  # 1..4
    type: int
    start: int  # bytes
    size: int  # bytes

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class DiskLayout:
    signature: int
    partitions: tuple[Partition, ...]

    def partuuid(self, number: int) -> str:
        """What root=PARTUUID=... names for partition `number` (the kernel's form for MBR disks)."""
        return f"{self.signature:08x}-{number:02x}"

    @property
    def boot(self) -> Partition:
        """The FAT boot partition (the first partition on a Raspberry Pi OS layout)."""
        first = self.partitions[0] if self.partitions else None
        if first is None or first.number != 1 or first.type not in FAT_TYPES:
            raise EdgeError("partition 1 is not a FAT partition: not a Raspberry Pi OS layout")
        return first

    @property
    def root(self) -> Partition:
        for p in self.partitions:
            if p.number == 2 and p.type == LINUX:
                return p
        raise EdgeError("partition 2 is not a Linux partition: not a Raspberry Pi OS layout")


def read_layout(path: str | os.PathLike[str]) -> DiskLayout:
    """Parse the four primary entries; an image without an MBR is an error naming the file."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            mbr = f.read(SECTOR)
    except OSError as e:
        raise EdgeError(f"{name}: cannot read: {e.strerror}") from None
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise EdgeError(f"{name}: no MBR partition table (not a disk image)")
    (signature,) = struct.unpack_from("<I", mbr, 440)
    parts = []
    for i in range(4):
        _, ptype, lba, sectors = struct.unpack_from("<B3xB3xII", mbr, 446 + 16 * i)
        if ptype and sectors:
            parts.append(Partition(i + 1, ptype, lba * SECTOR, sectors * SECTOR))
    return DiskLayout(signature, tuple(parts))


def is_block_device(path: str | os.PathLike[str]) -> bool:
    import stat

    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def image_size(path: Path) -> int:
    """Bytes of an image file or block device."""
    with open(path, "rb") as f:
        return f.seek(0, os.SEEK_END)
