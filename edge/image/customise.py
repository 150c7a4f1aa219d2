"""Apply the classroom-edge layer (the tar `make image` writes beside the image) to an existing Raspberry Pi OS
image file, without mounting it and without root: the ext4 root partition is edited in place with debugfs
(`IMAGE?offset=N`), the FAT side with mtools. If the root filesystem lacks room, the image file, the last
partition and the filesystem are grown first (resize2fs). e2fsck checks the result.

Raspberry Pi OS Bookworm (Python 3.11, /boot/firmware) is the target: the layer's venv is built for the
image's Python 3.11. Trixie ships Python 3.13, for which the layer would have to be built with cp313 wheels.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from edge.exc import EdgeError
from edge.image.copy import copy_image, copy_range
from edge.image.fat import FatVolume
from edge.image.mbr import SECTOR, DiskLayout, read_layout

EXAMPLE = """\
# classroom-edge: copy this file to classroom-edge.toml (or run `edge image personalise`) to provision the unit.
# At boot the unit validates it, installs it as /etc/classroom-edge/edge.toml and removes secrets from this card.
[unit]
room = "12"
school = "lincoln-es"

# [district]
# lrs_url = "https://lrs.district.example/xAPI"
# lrs_token = "..."
"""


def _tool(name: str) -> str:
    exe = shutil.which(name) or (f"/sbin/{name}" if os.path.exists(f"/sbin/{name}") else None)
    if exe is None:
        raise EdgeError(f"{name} not found: install Debian's e2fsprogs package")
    return exe


def _fs(image: Path, layout: DiskLayout) -> str:
    return f"{image}?offset={layout.root.start}"


def _run(args: list[str], what: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode not in (0,):
        raise EdgeError(f"{what} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-2000:]}")
    return proc.stdout


def free_bytes(image: Path, layout: DiskLayout) -> int:
    out = _run([_tool("dumpe2fs"), "-h", _fs(image, layout)], "dumpe2fs")
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return int(fields["Free blocks"]) * int(fields["Block size"])


def layer_bytes(layer: tarfile.TarFile) -> int:
    """Room the layer needs: file data in 4 KiB blocks plus an inode-and-directory allowance per entry."""
    return sum(((m.size + 4095) // 4096) * 4096 + 4096 for m in layer.getmembers())


def grow(image: Path, layout: DiskLayout, extra: int) -> DiskLayout:
    """Grow the image file, the last partition (the root) and its ext4 filesystem by `extra` bytes (4 MiB steps)."""
    root = layout.root
    if root is not max(layout.partitions, key=lambda p: p.start):
        raise EdgeError(f"{image}: the root partition is not the last one; cannot grow it")
    extra = (extra + (4 << 20) - 1) // (4 << 20) * (4 << 20)
    new_size = root.size + extra
    with open(image, "r+b") as f:
        f.truncate(max(f.seek(0, os.SEEK_END), root.start + new_size))
        f.seek(446 + 16 * (root.number - 1) + 12)
        f.write(struct.pack("<I", new_size // SECTOR))
        f.flush()
        os.fsync(f.fileno())
    layout = read_layout(image)
    # resize2fs reads and writes through `IMAGE?offset=N` but then truncates the file to the filesystem's size
    # as if it started at 0; so the partition is resized as a file of its own and copied back (sparse both ways)
    with tempfile.TemporaryDirectory(dir=image.parent) as tmp:
        part = Path(tmp) / "root.ext4"
        with open(image, "rb") as fin, open(part, "wb") as fout:
            copy_range(fin.fileno(), fout.fileno(), root.start, 0, root.size)
            fout.truncate(root.size)
        _run([_tool("e2fsck"), "-fy", str(part)], "e2fsck before resize2fs")
        _run([_tool("resize2fs"), str(part), f"{new_size // 1024}K"], "resize2fs")
        with open(part, "rb") as fin, open(image, "r+b") as fout:
            copy_range(fin.fileno(), fout.fileno(), 0, root.start, new_size)
            os.fsync(fout.fileno())
    return layout


def _quote(path: str) -> str:
    if '"' in path or "\n" in path:
        raise EdgeError(f"layer path {path!r} cannot be written with debugfs")
    return f'"{path}"'


def existing_paths(image: Path, layout: DiskLayout, dirs: set[str]) -> set[str]:
    """Which entries of `dirs` exist, with their children (one read-only debugfs run of `ls -p` per directory)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ls"
        script.write_text("".join(f"ls -p {_quote(d)}\n" for d in sorted(dirs)))
        out = _run([_tool("debugfs"), "-f", str(script), _fs(image, layout)], "debugfs (listing the root)")
    found: set[str] = set()
    current: str | None = None
    for line in out.splitlines():
        if line.startswith("debugfs: ls -p "):
            current = line[len("debugfs: ls -p "):].strip('"')
        elif current is not None and line.startswith("/") and line.count("/") >= 7:
            name = line.split("/")[5]
            found.add(current)
            if name not in (".", ".."):
                found.add(current.rstrip("/") + "/" + name)
    return found


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def debugfs_script(layer: tarfile.TarFile, staging: Path, exists: set[str]) -> tuple[list[str], int]:
    """Commands that create every member with its mode, owner and mtime (file data is extracted to `staging`).
    Directories that exist are left as they are; files and links that exist are replaced; missing parents
    are made root-owned 0755."""
    cmds: list[str] = []
    made: set[str] = set(exists) | {"/"}
    n = 0
    for m in sorted(layer.getmembers(), key=lambda m: m.name):
        path = "/" + m.name.lstrip("./").rstrip("/")
        if path == "/":
            continue
        for parent in _parents(path):
            if parent not in made:
                cmds += [f"mkdir {_quote(parent)}", f"sif {_quote(parent)} mode 040755"]
                made.add(parent)
        q = _quote(path)
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(m.mtime))
        if m.isdir():
            if path in made:
                continue  # a directory the image has: keep its mode and owner
            cmds.append(f"mkdir {q}")
            kind = 0o040000
        elif m.isfile():
            src = staging / f"{n}"
            with layer.extractfile(m) as fin, open(src, "wb") as fout:  # type: ignore[union-attr]
                shutil.copyfileobj(fin, fout)
            cmds += [f"rm {q}"] if path in exists else []
            cmds.append(f"write {_quote(str(src))} {q}")
            kind = 0o100000
        elif m.issym():
            cmds += [f"rm {q}"] if path in exists else []
            cmds.append(f"symlink {q} {_quote(m.linkname)}")
            kind = 0o120000
        else:
            raise EdgeError(f"layer member {m.name}: only directories, files and symlinks are supported")
        made.add(path)
        if not m.issym():
            cmds.append(f"sif {q} mode 0{kind | (m.mode & 0o7777):o}")
        cmds += [f"sif {q} uid {m.uid}", f"sif {q} gid {m.gid}", f"sif {q} mtime {stamp}"]
        n += 1
    return cmds, n


def apply_layer(image: Path, layout: DiskLayout, layer_path: Path) -> int:
    """Write the layer into the root filesystem; returns the number of entries written."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(layer_path) as layer:
        names = ["/" + m.name.lstrip("./").rstrip("/") for m in layer.getmembers()]
        dirs = {p for name in names for p in _parents(name)} | {"/"}
        exists = existing_paths(image, layout, dirs)
        cmds, n = debugfs_script(layer, Path(tmp), exists)
        script = Path(tmp) / "cmds"
        script.write_text("\n".join(cmds) + "\n")
        proc = subprocess.run([_tool("debugfs"), "-w", "-f", str(script), _fs(image, layout)], capture_output=True,
                              text=True, timeout=1800, check=False)
    # debugfs goes on after a failed command and exits 0: any message but its banner is an error
    errors = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
    if proc.returncode != 0 or errors:
        raise EdgeError(f"debugfs could not write the layer: {'; '.join(errors[:5]) or proc.returncode}")
    return n


def customise(src: Path, layer_path: Path, out: Path | None) -> Path:
    layout = read_layout(src)
    fat = FatVolume(src, layout.boot)
    names = {n.lower() for n in fat.names()}
    if "cmdline.txt" not in names or "config.txt" not in names:
        raise EdgeError(f"{src}: no config.txt/cmdline.txt on partition 1: not a Raspberry Pi OS image")
    _ = layout.root  # partition 2 must be Linux
    if out is not None:
        if out.exists():
            raise EdgeError(f"{out} exists; give a new file name")
        copy_image(src, out)
        image = out
    else:
        image = src
    try:
        with tarfile.open(layer_path) as layer:
            need = layer_bytes(layer)
        free = free_bytes(image, layout)
        if free < need + (64 << 20):  # keep 64 MiB spare after the layer
            layout = grow(image, layout, need + (64 << 20) - free)
        n = apply_layer(image, layout, layer_path)
        FatVolume(image, layout.boot).write("classroom-edge.example.toml", EXAMPLE.encode())
        _run([_tool("e2fsck"), "-fn", _fs(image, layout)], "e2fsck (check of the result)")
    except BaseException:
        if out is not None:
            out.unlink(missing_ok=True)
        raise
    print(f"{image}: classroom-edge layer applied ({n} entries from {layer_path.name}); "
          f"root partition {layout.root.size >> 20} MiB, filesystem clean")
    return image


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="customise-rpios", description=__doc__.split("\n\n")[0])
    p.add_argument("image", type=Path, help="a Raspberry Pi OS (Lite, Bookworm) .img, uncompressed")
    p.add_argument("layer", type=Path, help="image_build/out/classroom-edge-<version>-arm64-layer.tar")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("-o", "--out", type=Path, help="write a customised copy here (the original stays as it is)")
    g.add_argument("--in-place", action="store_true", help="customise IMAGE itself")
    args = p.parse_args(argv)
    try:
        customise(args.image, args.layer, None if args.in_place else args.out)
    except EdgeError as e:
        print(f"customise-rpios: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
