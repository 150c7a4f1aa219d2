#!/usr/bin/env bash
# Stage 2: the app for arm64, built on the host (no qemu): its wheel with the BKT kernel cross-compiled by
# Debian's gcc-aarch64-linux-gnu (-ffp-contract=off, as setup.py does, so it equals the pure twin bit for
# bit), and the arm64 wheels of its dependencies pinned in requirements-arm64.lock.
#   usage: app.sh OUT_DIR   -> OUT_DIR/wheels/*.whl
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/.." && pwd)
. "$here/settings.sh"
out=$1
py=${PYTHON:-python3}
: "${SOURCE_DATE_EPOCH:?}"
export SOURCE_DATE_EPOCH
rm -rf "$out/wheels" "$out/app"; mkdir -p "$out/wheels" "$out/app" "$here/cache"

# CPython 3.11 headers for aarch64 (pyconfig.h differs per architecture) from Debian's libpython3.11-dev:arm64,
# fetched with a private apt state so the host's dpkg architectures stay as they are.
pydev=$here/cache/pydev-arm64
if [ ! -f "$pydev/usr/include/aarch64-linux-gnu/python3.11/pyconfig.h" ]; then
    apt_dir=$(mktemp -d); trap 'rm -rf "$apt_dir"' EXIT
    mkdir -p "$apt_dir"/{lists/partial,archives/partial}; : > "$apt_dir/status"
    printf 'deb %s %s main\ndeb %s %s-security main\n' "$MIRROR" "$SUITE" "$SECURITY_MIRROR" "$SUITE" \
        > "$apt_dir/sources.list"
    apt_opts=(-o "Dir::State=$apt_dir" -o "Dir::State::status=$apt_dir/status" -o "Dir::Cache=$apt_dir"
              -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
              -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64" -o "Acquire::Languages=none" -o "APT::Sandbox::User=root")
    apt-get -qq "${apt_opts[@]}" update
    (cd "$apt_dir" && apt-get -qq "${apt_opts[@]}" download libpython3.11-dev:arm64)
    rm -rf "$pydev.partial"; dpkg-deb -x "$apt_dir"/libpython3.11-dev_*.deb "$pydev.partial"
    mv "$pydev.partial" "$pydev"
fi

# The kernel: Cython on the host, then the cross-compiler. Debian's gcc-aarch64-linux-gnu is used rather than gcc
# under qemu: it is one apt package on the host, runs at native speed (seconds, not minutes) and needs no compiler
# in the image; the bits are the same because -ffp-contract=off forbids the fused multiply-adds aarch64 gcc
# would otherwise emit (the test compares with the twin under qemu).
work=$out/app
"$py" -m cython -3 "$repo/native/edge_native/_bkt_c.pyx" -o "$work/_bkt_c.c"
so=_bkt_c.cpython-311-aarch64-linux-gnu.so
aarch64-linux-gnu-gcc -shared -fPIC -O3 -ffp-contract=off -fno-strict-aliasing -DNDEBUG -g0 \
    -ffile-prefix-map="$work"=. -ffile-prefix-map="$repo"=. \
    -I"$pydev/usr/include/python3.11" -I"$pydev/usr/include" \
    "$work/_bkt_c.c" -o "$work/$so"
aarch64-linux-gnu-strip --strip-unneeded "$work/$so"

# The app's wheel: setuptools builds it (with an x86-64 kernel), the arm64 kernel replaces that one and the
# wheel is re-tagged cp311-cp311-linux_aarch64 with a fresh RECORD.
"$py" -m pip wheel -q --no-deps -w "$work/host" "$repo" > "$work/pip-wheel.log" 2>&1 || { cat "$work/pip-wheel.log" >&2; exit 1; }
"$py" - "$work" "$so" <<'PY'
import base64, hashlib, os, sys, zipfile
from pathlib import Path
work, so = Path(sys.argv[1]), sys.argv[2]
(src,) = (work / "host").glob("classroom_edge-*.whl")
name, version = src.name.split("-")[:2]
tag = "cp311-cp311-linux_aarch64"
dist_info = f"{name}-{version}.dist-info"
files = {}
with zipfile.ZipFile(src) as z:
    for info in z.infolist():
        if info.filename.startswith("edge_native/_bkt_c.") and info.filename.endswith(".so"):
            continue
        if info.filename in (f"{dist_info}/RECORD",):
            continue
        data = z.read(info)
        if info.filename == f"{dist_info}/WHEEL":
            data = b"".join(b"Tag: " + tag.encode() + b"\n" if line.startswith(b"Tag:") else line
                            for line in data.splitlines(keepends=True))
            data = data.replace(b"Root-Is-Purelib: true", b"Root-Is-Purelib: false")
        files[info.filename] = data
files[f"edge_native/{so}"] = (work / so).read_bytes()
def digest(b): return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
record = "".join(f"{n},{digest(d)},{len(d)}\n" for n, d in sorted(files.items())) + f"{dist_info}/RECORD,,\n"
files[f"{dist_info}/RECORD"] = record.encode()
epoch = max(int(os.environ["SOURCE_DATE_EPOCH"]), 315532800)  # zip dates start in 1980
import time; stamp = time.gmtime(epoch)[:6]
dest = work.parent / "wheels" / f"{name}-{version}-{tag}.whl"
with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
    for n in sorted(files):  # RECORD last is customary; sorted keeps the bytes stable
        info = zipfile.ZipInfo(n, stamp)
        info.external_attr = (0o755 if n.endswith(".so") else 0o644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, files[n])
print(dest)
PY

# The dependencies: exactly the pinned arm64 wheels (hashes checked), cached across builds.
"$py" -m pip download -q --require-hashes --no-deps --only-binary=:all: --platform manylinux2014_aarch64 \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_34_aarch64 --python-version 3.11 \
    --implementation cp --abi cp311 -d "$here/cache/wheels" -r "$here/requirements-arm64.lock" 2>&1 \
    | { grep -v 'is ignored' || true; } >&2
while read -r req; do
    n=${req%%==*}; v=${req#*==}; v=${v%% *}
    cp "$here/cache/wheels/$n-$v-"*.whl "$out/wheels/"
done < <(grep -v '^#' "$here/requirements-arm64.lock")
echo "app: $(ls "$out/wheels" | wc -l) wheels in $out/wheels" >&2
