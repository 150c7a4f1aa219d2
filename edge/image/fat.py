"""Files on a FAT partition inside an image or card, through mtools (`-i IMAGE@@OFFSET`): no mount, no root."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from edge.exc import EdgeError
from edge.image.mbr import Partition

# mtools reads ~/.mtoolsrc and /etc/mtools.conf; none of that applies to an image given with -i
_ENV = {"MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null", "MTOOLS_NO_VFAT": "0"}


def _mtool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise EdgeError(f"{name} not found: install Debian's mtools package (apt-get install mtools)")
    return exe


class FatVolume:
    """The FAT partition `part` of `image` (an image file or a block device)."""

    def __init__(self, image: Path, part: Partition) -> None:
        self.image = image
        self.part = part
        self._spec = f"{image}@@{part.start}"

    def _run(self, tool: str, *args: str, input: bytes | None = None) -> bytes:
        proc = subprocess.run([_mtool(tool), "-i", self._spec, *args], input=input, capture_output=True,
                              env={**os.environ, **_ENV}, timeout=120, check=False)
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip() or f"exit {proc.returncode}"
            raise EdgeError(f"{self.image}: {tool} {' '.join(args)}: {msg}")
        return proc.stdout

    def names(self) -> list[str]:
        """File names in the partition's root directory."""
        out = self._run("mdir", "-b", "::/").decode()
        return sorted(line.rsplit("/", 1)[-1] for line in out.splitlines() if line.strip())

    def exists(self, name: str) -> bool:
        return name in self.names()

    def read(self, name: str) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            dest = Path(tmp) / "f"
            self._run("mcopy", "-n", f"::/{name}", str(dest))
            return dest.read_bytes()

    def write(self, name: str, data: bytes) -> None:
        """Create or replace `name` in the root directory (mtools writes the FAT, directory and clusters)."""
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / name
            src.write_bytes(data)
            self._run("mcopy", "-o", "-D", "o", str(src), f"::/{name}")

    def delete(self, name: str) -> None:
        self._run("mdel", f"::/{name}")
