#!/usr/bin/env bash
# Stage 3: the classroom-edge layer on top of the base root (in place), and the same layer as a tar for
# customise-rpios. Runs the root's own python3 under qemu-user (chroot) to make the release's venv.
#   usage: layer.sh ROOT_DIR WHEELS_DIR VERSION LAYER_TAR
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/.." && pwd)
root=$1 wheels=$2 version=$3 layer_tar=$4
: "${SOURCE_DATE_EPOCH:?}"
export SOURCE_DATE_EPOCH

mounts=()
cleanup() { for ((i=${#mounts[@]}-1; i>=0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
for m in proc dev sys; do mount --rbind "/$m" "$root/$m"; mount --make-rslave "$root/$m"; mounts+=("$root/$m"); done
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
            LC_ALL=C.UTF-8 PYTHONHASHSEED=0 "$@"; }

# The release: a venv per version and a `current` link, so an update is one atomic rename of the link.
release=/opt/classroom-edge/releases/$version
rm -rf "${root:?}$release" "$root/tmp/wheels"
t0=$(date +%s)
in_root python3 -m venv --without-pip "$release"
cp -r "$wheels" "$root/tmp/wheels"
# pip from the wheel set itself is not needed on the unit: install with the root's ensurepip-less venv through
# a pip run from a wheel (pip is a zipapp-able wheel), no index, only the pinned files
pipwhl=$(ls "$here"/cache/pip-*.whl 2>/dev/null | head -1 || true)
if [ -z "$pipwhl" ]; then
    "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: -d "$here/cache" "pip==24.3.1" 2>&1 \
        | { grep -v 'is ignored' || true; } >&2
    pipwhl=$(ls "$here"/cache/pip-*.whl | head -1)
fi
cp "$pipwhl" "$root/tmp/wheels/"
in_root "$release/bin/python" "/tmp/wheels/$(basename "$pipwhl")/pip" install -q --no-index --no-cache-dir \
    --disable-pip-version-check --find-links /tmp/wheels "classroom-edge==$version"
rm -rf "$root/tmp/wheels"
# complete, as `edge self-update` marks a release it installed (so the first update on a card can roll back to it)
app_wheel=$(ls "$wheels"/classroom_edge-"$version"-*.whl | head -1)
"${PYTHON:-python3}" -c 'import sys; from pathlib import Path; from edge.fleet.selfupdate import write_marker
write_marker(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), float(sys.argv[4]))' \
    "$root$release" "$version" "$app_wheel" "$SOURCE_DATE_EPOCH"
ln -sfn "releases/$version" "$root/opt/classroom-edge/current"
install -m 0644 "$repo/README.md" "$root/opt/classroom-edge/README.md"
echo "layer: venv with the app in $(( $(date +%s) - t0 )) s" >&2

# Units (vendor location) enabled the way systemctl does it, plus networkd for DHCP on the wired LAN.
install -m 0644 "$repo"/systemd/classroom-edge-*.service "$root/usr/lib/systemd/system/"
systemctl --root="$root" --quiet enable classroom-edge-firstboot.service classroom-edge-growroot.service \
    classroom-edge-rotation.service \
    classroom-edge-cache.service classroom-edge-mastery.service systemd-networkd.service systemd-resolved.service
# Overlay files (udev rule for GPIO, sshd keys-only, the wired network) and the config directory.
cp -r --no-preserve=ownership "$here/layer/." "$root/"
in_root sh -c 'getent group gpio >/dev/null || groupadd --system gpio'
in_root sh -c 'getent group classroom-edge >/dev/null || groupadd --system classroom-edge'
install -d -m 0750 -o root -g "$(in_root getent group classroom-edge | cut -d: -f3)" "$root/etc/classroom-edge"

# Nothing per-machine ships: machine-id is made at first boot, SSH host keys by the first-boot unit.
rm -f "$root"/etc/ssh/ssh_host_*
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/var/lib/systemd/random-seed" "$root/var/cache/ldconfig/aux-cache"
echo classroom-edge > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tclassroom-edge\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
find "$root/var/log" -type f -size +0 -exec truncate -s 0 {} +

# Times: nothing in the root is newer than the commit (the ext4 image then depends only on the tree's contents).
find "$root" -xdev -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"

# The layer alone, for customise-rpios: what this stage put in the root that Raspberry Pi OS needs too
# (not networkd or the groups: Raspberry Pi OS has its own network stack; the first-boot step adds the group).
(cd "$root" && tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --numeric-owner --owner=0 --group=0 \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf "$layer_tar.partial" \
    opt/classroom-edge usr/lib/systemd/system/classroom-edge-*.service \
    etc/systemd/system/multi-user.target.wants/classroom-edge-*.service \
    etc/systemd/system/multi-user.target.wants/ssh.service \
    etc/udev/rules.d/60-classroom-edge-gpio.rules etc/ssh/sshd_config.d/50-classroom-edge.conf usr/local/bin/edge)
mv "$layer_tar.partial" "$layer_tar"
echo "layer: $layer_tar ($(du -h "$layer_tar" | cut -f1))" >&2
