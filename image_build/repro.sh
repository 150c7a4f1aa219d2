#!/usr/bin/env bash
# `make image-repro`: build the image a second time from this commit into separate directories and compare the
# root manifests (every path, type, mode, owner, size and sha256). IMAGE_REPRO_COLD=1 also rebuilds the base root
# in a fresh cache (mmdebstrap again) instead of reusing the cached one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/edge/__init__.py")
name=classroom-edge-$version-arm64
first=$here/out/$name-root.manifest
[ -f "$first" ] || { echo "repro: run make image first" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/edge-repro.XXXXXX"); trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}
cache_env=()
[ "${IMAGE_REPRO_COLD:-0}" = 1 ] && cache_env=(IMAGE_CACHE="$work/cache")
t0=$(date +%s)
env "${cache_env[@]}" IMAGE_BUILD_DIR="$work/build" IMAGE_OUT_DIR="$work/out" bash "$here/build.sh" > "$work/build.log" 2>&1 \
    || { tail -30 "$work/build.log" >&2; exit 1; }
if cmp -s "$first" "$work/out/$name-root.manifest"; then
    echo "repro: identical root manifests ($(wc -l < "$first") entries) from two builds of $(git -C "$repo" rev-parse --short HEAD)" \
         "(second build $(( $(date +%s) - t0 )) s$([ "${IMAGE_REPRO_COLD:-0}" = 1 ] && echo ', base rebuilt'))"
else
    echo "repro: the root manifests differ:" >&2
    diff "$first" "$work/out/$name-root.manifest" | head -40 >&2
    exit 1
fi
