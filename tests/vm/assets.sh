#!/usr/bin/env bash
# Fetch and cache the guest kernel and its modules for the qemu harness.
#
# Why: the host kernel (here and in CI) has no device-mapper, so dm-crypt and dm-integrity can only be
# exercised in a guest. We take Debian's own kernel: the package that the `linux-image-amd64`
# metapackage currently depends on is downloaded with `apt-get download` (never installed on the host),
# unpacked with `dpkg -x` and indexed with `depmod -b`, so `modprobe -d` can resolve module
# dependencies. Everything is cached under <target>/vm/<kernel-package>/, keyed by the package name
# (which carries the kernel ABI version).
#
# Usage: assets.sh CACHE_DIR   (prints the cache directory of the kernel on stdout)
set -euo pipefail

cache_root=$1
mkdir -p "$cache_root"

kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [[ -z $kpkg ]]; then
    echo "vm-assets: apt knows no linux-image-amd64, running apt-get update" >&2
    apt-get update -qq >&2
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
fi
if [[ -z $kpkg ]]; then
    echo "vm-assets: cannot resolve the kernel package of linux-image-amd64" >&2
    exit 1
fi

dir=$cache_root/$kpkg
if [[ -f $dir/ready ]]; then
    echo "$dir"
    exit 0
fi

# Serialise concurrent first runs (several test binaries may start at once).
exec 9>"$cache_root/.lock"
flock 9
if [[ -f $dir/ready ]]; then
    echo "$dir"
    exit 0
fi

echo "vm-assets: downloading $kpkg" >&2
rm -rf "$dir"
tmp=$(mktemp -d "$cache_root/.dl.XXXXXX")
chmod 0777 "$tmp" # apt-get download drops privileges to _apt
(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >&2)
deb=$(ls "$tmp"/*.deb)
mkdir -p "$tmp/root"
dpkg -x "$deb" "$tmp/root"
kver=$(ls "$tmp/root/lib/modules")
depmod -b "$tmp/root" "$kver"
cp "$tmp/root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
echo "$kver" >"$tmp/kver"
rm -f "$deb"
mv "$tmp" "$dir"
touch "$dir/ready"
echo "$dir"
