#!/usr/bin/env python3
"""Print the kernel modules a set of device trees need: every `compatible` string in the DTBs, matched against
the kernel's modules.alias (`of:N*T*C<compatible>...`), minus what is built in. The image's initramfs is made
with MODULES=list from this (the Raspberry Pi DTBs that raspi-firmware ships), which is what makes a Pi's SD
card, regulators, clocks and USB/PCIe boot path come up, without copying every driver of the arm64 kernel.

    usage: dt_modules.py MODULES_DIR DTB...
"""

from __future__ import annotations

import fnmatch
import struct
import sys
from pathlib import Path

FDT_MAGIC = 0xD00DFEED
BEGIN_NODE, END_NODE, PROP, NOP, END = 1, 2, 3, 4, 9


def compatibles(dtb: bytes) -> set[str]:
    """All `compatible` values of a flattened device tree (the DTB format, version 17)."""
    magic, _, off_struct, off_strings = struct.unpack_from(">IIII", dtb, 0)
    if magic != FDT_MAGIC:
        raise ValueError("not a device tree blob")
    found: set[str] = set()
    pos = off_struct
    while True:
        (token,) = struct.unpack_from(">I", dtb, pos)
        pos += 4
        if token == BEGIN_NODE:
            end = dtb.index(b"\0", pos)
            pos = (end + 4) & ~3
        elif token == PROP:
            length, nameoff = struct.unpack_from(">II", dtb, pos)
            pos += 8
            name = dtb[off_strings + nameoff: dtb.index(b"\0", off_strings + nameoff)]
            if name == b"compatible":
                found.update(s.decode() for s in dtb[pos:pos + length].split(b"\0") if s)
            pos = (pos + length + 3) & ~3
        elif token in (END_NODE, NOP):
            continue
        elif token == END:
            return found
        else:
            raise ValueError(f"bad token {token} at {pos - 4}")


def modules_for(modules_dir: Path, compat: set[str]) -> set[str]:
    of_aliases: list[tuple[str, str]] = []
    for line in (modules_dir / "modules.alias").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "alias" and parts[1].startswith("of:"):
            of_aliases.append((parts[1], parts[2]))
    # the aliases are patterns over N(ame), T(ype), C(ompatible); almost all are `of:N*T*C<compatible>[C*]`
    exact: dict[str, set[str]] = {}
    other: list[tuple[str, str]] = []
    for pattern, module in of_aliases:
        body = pattern.removeprefix("of:N*T*C").removesuffix("C*")
        if pattern.startswith("of:N*T*C") and not any(ch in body for ch in "*?["):
            exact.setdefault(body, set()).add(module)
        else:
            other.append((pattern, module))
    wanted: set[str] = set()
    for c in compat:
        wanted |= exact.get(c, set())
        probe = f"of:NxTxC{c}"
        wanted |= {m for p, m in other if fnmatch.fnmatchcase(probe, p) or fnmatch.fnmatchcase(probe + "C", p)}
    return wanted


def main() -> None:
    modules_dir = Path(sys.argv[1])
    compat: set[str] = set()
    for dtb in sys.argv[2:]:
        compat |= compatibles(Path(dtb).read_bytes())
    for name in sorted(modules_for(modules_dir, compat)):
        print(name)


if __name__ == "__main__":
    main()
