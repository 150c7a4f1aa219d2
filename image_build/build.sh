#!/usr/bin/env bash
# `make image`: image_build/out/classroom-edge-<version>-arm64.img from this checkout, then its path and size.
#   stages: base (arm64 Debian root, cached by key) -> app (wheels, cross-compiled kernel) -> layer -> disk
# Also writes out/...-layer.tar (for customise-rpios) and out/...-root.manifest (the reproducibility check).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
export PYTHON=${PYTHON:-python3}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/edge/__init__.py")
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}
build=${IMAGE_BUILD_DIR:-$here/build} out=${IMAGE_OUT_DIR:-$here/out}
name=classroom-edge-$version-arm64
t_start=$(date +%s)
stamp() { echo "image: $1 at +$(( $(date +%s) - t_start )) s" >&2; }

"$here/host-deps.sh" --binfmt
# The base root is cached outside the checkout, keyed by everything that shapes it (settings, package list,
# the stage itself): a rebuild of the app reuses it; a new key (or IMAGE_CACHE elsewhere) builds it afresh.
cache=${IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/classroom-edge-image}
mkdir -p "$here/cache" "$cache" "$build" "$out"
base_inputs=("$here/settings.sh" "$here/packages.txt" "$here/stages/base.sh" "$here/dt_modules.py")
# The base root's SOURCE_DATE_EPOCH is the last commit that changed what shapes it (not this commit's): mmdebstrap
# and initramfs-tools clamp times to it, so a cached base and a fresh one for the same commit are the same bytes.
base_sde=$(git -C "$repo" log -1 --format=%ct -- "${base_inputs[@]}")
key=$( { cat "${base_inputs[@]}"; echo "$base_sde"; } | sha256sum | cut -c1-16)
base=$cache/base-$key.tar
if [ -f "$base" ]; then
    stamp "base root from the cache ($base)"
else
    find "$cache" -maxdepth 1 -name 'base-*.tar' -delete  # one base kept: the current key's
    SOURCE_DATE_EPOCH=$base_sde "$here/stages/base.sh" "$base"
    stamp "base root built"
fi

"$here/stages/app.sh" "$build"
stamp "app wheels and arm64 kernel built"

rm -rf "$build/root"; mkdir -p "$build/root"
tar -xf "$base" -C "$build/root" --numeric-owner --xattrs --xattrs-include='*'
"$here/stages/layer.sh" "$build/root" "$build/wheels" "$version" "$out/$name-layer.tar"
stamp "layer applied"

"$PYTHON" "$here/manifest.py" "$build/root" > "$out/$name-root.manifest"
"$here/stages/disk.sh" "$build/root" "$out/$name.img"
stamp "disk image written"

img=$out/$name.img
echo "$img"
printf 'size: %s bytes (%d MiB), %d MiB allocated (sparse); root tree %s\n' "$(stat -c %s "$img")" \
    "$(( $(stat -c %s "$img") / 1048576 ))" "$(( $(stat -c %b "$img") * 512 / 1048576 ))" \
    "$(du -sh --exclude=./boot/firmware "$build/root" | cut -f1)"
