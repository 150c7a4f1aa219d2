#!/usr/bin/env python3
"""Print a root tree's manifest: one line per entry (path, type, mode, uid:gid, size, sha256 or link target),
sorted. Two builds of one commit must print the same manifest (the reproducibility check)."""

import hashlib
import os
import stat
import sys


def main(root: str) -> None:
    lines = []
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(top, name)
            rel = "/" + os.path.relpath(path, root)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                what = f"l {os.readlink(path)}"
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                what = f"f {st.st_size} {h.hexdigest()}"
            elif stat.S_ISDIR(st.st_mode):
                what = "d"
            else:
                what = f"c {os.major(st.st_rdev)},{os.minor(st.st_rdev)}" if stat.S_ISCHR(st.st_mode) else "o"
            lines.append(f"{rel}\t{mode:04o}\t{st.st_uid}:{st.st_gid}\t{what}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
