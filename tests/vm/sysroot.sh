#!/usr/bin/env bash
# Make (once) and cache a minimal Debian root with systemd for the systemd boot of the package
# (tests/vm/initramfs.sh --systemd-root), and print its directory.
#
# Why debootstrap: the unit must be run by a real systemd with a real udev, which the busybox
# guests lack. `debootstrap --variant=minbase` with systemd, udev and libcryptsetup12, from the
# first archive in this machine's own apt sources (so the script names no host), cached under
# <target>/vm/sysroot-<suite>/ (about 250 MB; a few minutes on a fresh machine).
#
# Usage: sysroot.sh CACHE_DIR
set -euo pipefail

cache_root=$1
suite=bookworm
dir=$cache_root/sysroot-$suite
if [[ -f $dir/.ready ]]; then
    echo "$dir"
    exit 0
fi
mkdir -p "$cache_root"
exec 9>"$cache_root/.sysroot.lock"
flock 9
if [[ -f $dir/.ready ]]; then
    echo "$dir"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "vm-sysroot: debootstrap missing (scripts/deps.sh)" >&2; exit 1; }
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[[ -n $mirror ]] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[[ -n $mirror ]] || { echo "vm-sysroot: no archive in this machine's apt sources" >&2; exit 1; }
echo "vm-sysroot: debootstrap $suite (minbase + systemd) into $dir" >&2
tmp=$dir.tmp
rm -rf "$tmp"
debootstrap --variant=minbase --include=systemd,systemd-sysv,udev,libcryptsetup12,kmod \
    "$suite" "$tmp" "$mirror" >&2
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
rm -rf "$dir"
mv "$tmp" "$dir"
touch "$dir/.ready"
echo "$dir"
