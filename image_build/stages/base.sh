#!/usr/bin/env bash
# Stage 1: the arm64 Debian root (mmdebstrap under qemu-user), cached by a key over everything that shapes it.
#   usage: base.sh OUT_TAR        (prints nothing else on stdout; progress on stderr)
# The root has every package of packages.txt configured, ONE initramfs (update-initramfs is diverted while
# packages are configured, so the kernel and raspi-firmware do not each build one), and /boot/firmware
# filled by raspi-firmware's own hook (kernel, initrd, start*.elf, dtbs, config.txt, cmdline.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/settings.sh"
out=$1
: "${SOURCE_DATE_EPOCH:?set SOURCE_DATE_EPOCH (the build uses the commit time)}"
export SOURCE_DATE_EPOCH

packages=$(grep -v '^\s*#' "$here/packages.txt" | grep -v '^\s*$' | paste -sd, -)
sources=(
    "deb $MIRROR $SUITE $COMPONENTS"
    "deb $MIRROR $SUITE-updates $COMPONENTS"
    "deb $SECURITY_MIRROR $SUITE-security $COMPONENTS"
)

# Hooks run on the host with $1 = the root directory; mmdebstrap has proc, sys and dev mounted in it.
essential_hook=$(cat <<HOOK
set -e
chroot "\$1" dpkg-divert --quiet --local --rename --divert /usr/sbin/update-initramfs.deferred --add /usr/sbin/update-initramfs
printf '#!/bin/sh\necho "update-initramfs \$*: deferred to the end of the image build" >&2\n' > "\$1/usr/sbin/update-initramfs"
chmod 755 "\$1/usr/sbin/update-initramfs"
mkdir -p "\$1/boot/firmware"
printf '%s\n' \
  '# <file system>               <mount point>   <type> <options>                   <dump> <pass>' \
  'PARTUUID=$DISK_SIGNATURE-02  /               ext4   defaults,noatime            0      1' \
  'PARTUUID=$DISK_SIGNATURE-01  /boot/firmware  vfat   defaults,noatime,umask=0077 0      2' > "\$1/etc/fstab"
HOOK
)
customize_hook=$(cat <<HOOK
set -e
rm "\$1/usr/sbin/update-initramfs"
chroot "\$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
# MODULES=list with the drivers the Raspberry Pi device trees need (resolved on the host from the DTBs and
# modules.alias; display, sound and radio drivers are left to udev after the switch to the root) plus the
# root disk's (ext4, SD/MMC, USB mass storage, virtio for qemu). MODULES=most copies ~2,000 modules one by one
# through qemu-user: 20+ min here, against a few minutes for this list.
k=\$(ls "\$1/lib/modules")
{ echo "# classroom-edge: written by image_build/stages/base.sh (dt_modules.py + the root disk's drivers)"
  python3 "$here/dt_modules.py" "\$1/lib/modules/\$k" "\$1"/usr/lib/linux-image-"\$k"/broadcom/bcm27*-rpi-*.dtb \
    | grep -vE '^(vc4|v3d|snd_.*|hci_uart|leds_gpio|pwm_bcm2835|spi_.*|.*_thermal|.*_rng.*|i2c_bcm2835)\$'
  printf '%s\n' ext4 vfat nls_cp437 nls_ascii virtio_blk virtio_pci virtio_mmio usb_storage uas sd_mod xhci_pci \
    xhci_plat_hcd
} > "\$1/etc/initramfs-tools/modules"
printf 'MODULES=list\nFSTYPE=ext4\n' > "\$1/etc/initramfs-tools/conf.d/classroom-edge-modules.conf"
sed -i 's/^ROOTPART=.*//; s/^#\?ROOTPART=.*//' "\$1/etc/default/raspi-firmware"
echo 'ROOTPART=PARTUUID=$DISK_SIGNATURE-02' >> "\$1/etc/default/raspi-firmware"
echo 'COMPRESSLEVEL=$INITRAMFS_ZSTD_LEVEL' > "\$1/etc/initramfs-tools/conf.d/classroom-edge-compress.conf"
t0=\$(date +%s)
for k in "\$1"/lib/modules/*; do chroot "\$1" update-initramfs -c -k "\$(basename "\$k")"; done
echo "base: one initramfs built in \$(( \$(date +%s) - t0 )) s" >&2
HOOK
)

t0=$(date +%s)
mmdebstrap --arch=arm64 --variant=minbase --mode=root --format=tar --include="$packages" \
    --components="${COMPONENTS// /,}" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --essential-hook="$essential_hook" --customize-hook="$customize_hook" \
    "$SUITE" "$out.partial" "${sources[@]}" >&2
mv "$out.partial" "$out"
echo "base: arm64 root in $(( $(date +%s) - t0 )) s -> $out ($(du -h "$out" | cut -f1))" >&2
