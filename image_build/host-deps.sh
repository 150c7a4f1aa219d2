#!/usr/bin/env bash
# Debian packages the image targets need on the build host, installed only when missing (CI starts bare).
#   --light   only what the fast image tests use (mtools, genimage, ...: `make test` runs them)
#   --binfmt  everything, and qemu-user's binfmt handler for arm64 (the root's scripts and python3 run under it)
set -euo pipefail
pairs=(genimage:genimage mcopy:mtools mkfs.fat:dosfstools sfdisk:fdisk debugfs:e2fsprogs useradd:passwd
       ssh-keygen:openssh-client)
if [ "${1:-}" != "--light" ]; then
    pairs+=(mmdebstrap:mmdebstrap arch-test:arch-test qemu-aarch64-static:qemu-user-static
            update-binfmts:binfmt-support qemu-system-aarch64:qemu-system-arm
            aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu ssh:openssh-client systemd-analyze:systemd)
fi
need=()
for pair in "${pairs[@]}"; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "host-deps: apt-get install ${need[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "${1:-}" = "--binfmt" ]; then
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
    arch-test arm64 >/dev/null || { echo "host-deps: arm64 binaries do not run under qemu-user here" >&2; exit 1; }
fi
