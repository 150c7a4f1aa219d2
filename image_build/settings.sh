# Settings shared by the build stages (sourced by bash). Changing one changes the base-root cache key.
SUITE=bookworm
MIRROR=${IMAGE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
COMPONENTS="main non-free-firmware"
# MBR disk signature: root=PARTUUID=<signature>-02 and the fstab use it, so it is fixed per product line
# (every card of a release has the same one, as Raspberry Pi OS images do until their first boot)
DISK_SIGNATURE=c1a55ed9
# initramfs-tools compresses with `zstd -19` by default: under qemu-user that alone takes minutes;
# level 3 makes an initrd a few MB larger and is built in seconds (measured in the README)
INITRAMFS_ZSTD_LEVEL=3
