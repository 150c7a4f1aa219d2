"""Growing the root partition to the end of the card: the MBR arithmetic on an image of the Pi layout (the live
path, resizepart + online resize2fs, runs in the smoke boot on an enlarged disk)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from edge.image.growroot import ext4_bytes, new_root_size, write_partition_size
from edge.image.mbr import read_layout


def test_the_last_partition_grows_to_the_aligned_end_of_the_disk(rpi_image: Path) -> None:
    layout = read_layout(rpi_image)
    disk = rpi_image.stat().st_size + (1 << 30) + 12345  # a bigger card, not a multiple of 4 MiB
    size = new_root_size(layout, disk, 2)
    assert size is not None
    assert (layout.root.start + size) % (4 << 20) == 0 and layout.root.start + size <= disk
    assert disk - (layout.root.start + size) < 4 << 20
    with open(rpi_image, "r+b") as f:
        f.truncate(disk)
    write_partition_size(rpi_image, 2, size)
    grown = read_layout(rpi_image)
    assert grown.boot == layout.boot and grown.root.start == layout.root.start and grown.root.size == size
    dump = subprocess.run(["sfdisk", "-d", str(rpi_image)], capture_output=True, text=True, check=True).stdout
    assert f"size={size // 512:>12}, type=83" in dump


def test_nothing_to_do_when_the_root_fills_the_card_or_is_not_last(rpi_image: Path) -> None:
    layout = read_layout(rpi_image)
    assert new_root_size(layout, layout.root.end, 2) is None
    assert new_root_size(layout, layout.root.end + (8 << 20), 2) is None  # < 16 MiB to gain
    assert new_root_size(layout, layout.root.end + (1 << 30), 1) is None  # the boot partition is not last


def test_the_filesystem_size_is_read_from_the_superblock(rpi_image: Path) -> None:
    layout = read_layout(rpi_image)
    out = subprocess.run(["dumpe2fs", "-h", f"{rpi_image}?offset={layout.root.start}"], capture_output=True,
                         text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert ext4_bytes(rpi_image, layout.root.start) == int(fields["Block count"]) * int(fields["Block size"])
    assert ext4_bytes(rpi_image, layout.root.start) <= layout.root.size
