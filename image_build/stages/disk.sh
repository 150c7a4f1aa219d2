#!/usr/bin/env bash
# Stage 4: the disk image with genimage (no mounts): MBR, FAT32 bootfs from ROOT/boot/firmware, ext4 rootfs.
#   usage: disk.sh ROOT_DIR IMAGE_PATH
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/settings.sh"
root=$1 image=$2
: "${SOURCE_DATE_EPOCH:?}"
out=$(dirname "$image"); name=$(basename "$image")
work=$(mktemp -d "${TMPDIR:-/tmp}/genimage.XXXXXX"); trap 'rm -rf "$work"' EXIT
# the root's size plus a third for the unit's first days (the lesson cache grows into the rest of the card
# after the root partition is grown), in 4 MiB steps
used=$(du -s --block-size=1M --exclude=./boot/firmware "$root" | cut -f1)
size=$(( (used * 4 / 3 + 256 + 3) / 4 * 4 ))
uuid=$(printf 'classroom-edge-root-%s' "$DISK_SIGNATURE" | sha256sum | sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-8\4-\5/')
sed -e "s/@DISK_SIGNATURE@/$DISK_SIGNATURE/g" -e "s/@ROOT_UUID@/$uuid/g" -e "s/@ROOT_SIZE@/${size}M/" \
    -e "s/@IMAGE_NAME@/$name/" -e "s/@FS_TIMESTAMP@/$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S)/" \
    "$here/genimage.cfg.in" > "$work/genimage.cfg"
mkdir -p "$out" "$work/tmp" "$work/in"
rm -f "$image"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH genimage --rootpath "$root" --tmppath "$work/tmp" --inputpath "$work/in" \
    --outputpath "$work/out" --config "$work/genimage.cfg" >"$work/genimage.log" 2>&1 \
    || { tail -40 "$work/genimage.log" >&2; exit 1; }
mv "$work/out/$name" "$image"
echo "disk: $image (root ${size} MiB, $used MiB used)" >&2
