#!/usr/bin/env bash
# Install the system packages scratchcrypt needs to build and test, when they are missing.
#
# Build: pkg-config, libclang-dev (bindgen), libcryptsetup-dev, libdevmapper-dev (devicemapper-sys
# probes it with pkg-config; also pulled in by libcryptsetup-dev), libext2fs-dev + comerr-dev
# (static libext2fs.a, libcom_err.a), libblkid-dev (the data guard, libblkid-rs).
# Tests: e2fsprogs (e2fsck/dumpe2fs/mke2fs as oracles), fuse3 (strict-read device), and for the
# qemu harness qemu-system-x86, busybox-static, cpio, kmod, plus cryptsetup-bin and dmsetup as
# oracles inside the guest (with blkid/losetup from util-linux/mount and GNU dd from coreutils, which
# Debian always has). xfsprogs (mkfs.xfs, xfs_repair) for the hcsshim recipe of the VM benchmark
# (run.sh --xfs); python3 for the QMP device_del of run.sh --hotplug. initramfs-tools
# (mkinitramfs, with udev and klibc-utils), dpkg-dev (cargo-deb's dpkg-shlibdeps), util-linux
# (unshare), systemd (systemd-analyze verify) and debootstrap (the systemd root of the unit's
# boot) for the package and its boots (tests/vm_initramfs.rs). e2fsck-static for the guest
# without shared libraries (run.sh --no-libs). fdisk (sfdisk), mdadm and lvm2 make the real GPT,
# md RAID member and LVM physical volume that the data guard must refuse in the guest
# (tests/vm/guest/guard_real.sh). The product itself needs none of the test tools.
# Static build (scripts/build-static.sh): dpkg-dev (apt-get source), autoconf, automake, autopoint,
# libtool, gettext (cryptsetup's autogen.sh), libpopt-dev (cryptsetup's configure checks it even
# without the tools), libaio-dev (lvm2's configure), and the static archives of json-c and libuuid
# (libjson-c-dev, uuid-dev; libssl-dev for the openssl backend); libblkid.a comes with
# libblkid-dev (the data guard).
set -euo pipefail

PACKAGES=(
    pkg-config libclang-dev libcryptsetup-dev libdevmapper-dev libext2fs-dev comerr-dev libblkid-dev
    e2fsprogs fuse3 libfuse3-dev
    qemu-system-x86 busybox-static cpio kmod cryptsetup-bin dmsetup xfsprogs python3
    initramfs-tools dpkg-dev util-linux systemd debootstrap
    e2fsck-static fdisk mdadm lvm2
    autoconf automake autopoint libtool gettext libpopt-dev libaio-dev libjson-c-dev uuid-dev
    libssl-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}" >&2
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
