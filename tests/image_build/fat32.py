"""A minimal FAT32 reader for tests: where the FATs, the root directory and each file's clusters are, so a test
can check that writing a few files changed no other byte of the image."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

EOC = 0x0FFFFFF8


@dataclass(frozen=True)
class Fat32:
    image: Path
    start: int  # partition offset in bytes

    def _geometry(self) -> tuple[int, int, int, int, int, int, int]:
        with open(self.image, "rb") as f:
            f.seek(self.start)
            bs = f.read(512)
        bps, spc, reserved, nfats = struct.unpack_from("<HBHB", bs, 11)
        (fat_size,) = struct.unpack_from("<I", bs, 36)
        (root_cluster,) = struct.unpack_from("<I", bs, 44)
        (fsinfo,) = struct.unpack_from("<H", bs, 48)
        assert fat_size and bs[82:90] == b"FAT32   ", "not FAT32"
        return bps, spc, reserved, nfats, fat_size, root_cluster, fsinfo

    def entries(self) -> tuple[int, ...]:
        bps, _, reserved, _, fat_size, _, _ = self._geometry()
        with open(self.image, "rb") as f:
            f.seek(self.start + reserved * bps)
            raw = f.read(fat_size * bps)
        return struct.unpack(f"<{len(raw) // 4}I", raw)

    def chain(self, first: int) -> list[int]:
        fat = self.entries()
        out = []
        c = first
        while 2 <= c < EOC and c not in out:
            out.append(c)
            c = fat[c] & 0x0FFFFFFF
        return out

    def cluster_range(self, c: int) -> tuple[int, int]:
        bps, spc, reserved, nfats, fat_size, _, _ = self._geometry()
        data = self.start + (reserved + nfats * fat_size) * bps
        off = data + (c - 2) * spc * bps
        return off, off + spc * bps

    def root_entries(self) -> dict[str, tuple[int, int]]:
        """Long (or 8.3) name -> (first cluster, size) of the files in the root directory."""
        *_, root_cluster, _ = self._geometry()
        raw = b""
        with open(self.image, "rb") as f:
            for c in self.chain(root_cluster):
                lo, hi = self.cluster_range(c)
                f.seek(lo)
                raw += f.read(hi - lo)
        entries: dict[str, tuple[int, int]] = {}
        lfn: list[str] = []
        for i in range(0, len(raw), 32):
            e = raw[i:i + 32]
            if e[0] == 0:
                break
            if e[0] == 0xE5:
                lfn = []
                continue
            if e[11] == 0x0F:
                part = (e[1:11] + e[14:26] + e[28:32]).decode("utf-16-le", "ignore")
                lfn.insert(0, part.split("\x00")[0].rstrip("\uffff"))
                continue
            if e[11] & 0x08:  # volume label
                lfn = []
                continue
            short = e[0:8].decode().strip() + ("." + e[8:11].decode().strip() if e[8:11].strip() else "")
            name = "".join(lfn) or short
            hi, lo = struct.unpack_from("<H", e, 20)[0], struct.unpack_from("<H", e, 26)[0]
            entries[name] = ((hi << 16) | lo, struct.unpack_from("<I", e, 28)[0])
            lfn = []
        return entries

    def metadata_ranges(self) -> list[tuple[int, int]]:
        """The FATs, the FSInfo sector and the root directory's clusters (what creating a file updates)."""
        bps, _, reserved, nfats, fat_size, root_cluster, fsinfo = self._geometry()
        fats = (self.start + reserved * bps, self.start + (reserved + nfats * fat_size) * bps)
        info = (self.start + fsinfo * bps, self.start + (fsinfo + 1) * bps)
        return [fats, info, *(self.cluster_range(c) for c in self.chain(root_cluster))]

    def file_ranges(self, name: str) -> list[tuple[int, int]]:
        first, _ = self.root_entries()[name]
        return [self.cluster_range(c) for c in self.chain(first)]


def hash_outside(image: Path, ranges: list[tuple[int, int]]) -> str:
    """sha256 of every byte of `image` outside `ranges` (the byte positions are part of what is hashed)."""
    import hashlib

    h = hashlib.sha256()
    size = image.stat().st_size
    cuts = sorted(ranges)
    pos = 0
    with open(image, "rb") as f:
        for lo, hi in [*cuts, (size, size)]:
            if lo > pos:
                f.seek(pos)
                left = lo - pos
                while left:
                    chunk = f.read(min(left, 1 << 22))
                    h.update(chunk)
                    left -= len(chunk)
                h.update(f"|{lo}|".encode())
            pos = max(pos, hi)
    return h.hexdigest()
