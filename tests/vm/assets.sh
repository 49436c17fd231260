#!/usr/bin/env bash
# Fetch and cache one guest kernel and its modules for the qemu harness.
#
# Why: the host kernel (here and in CI) has no device-mapper, so dm-crypt and dm-integrity can only be
# exercised in a guest. We take Debian's own kernels, and more than one: users run Debian 11's 5.10,
# Debian 12's 6.1 and Debian 13's 6.12 (issue 25: 5.10 could not activate a single disk while every
# test booted 6.1). The kernel package is resolved and downloaded through the project-local apt
# configuration (scripts/apt-local.sh), for every release including the default one, so neither the
# host's apt sources nor its release matter. The package is never installed on the host: it is
# unpacked with `dpkg -x` and indexed with `depmod -b`, so `modprobe -d` can resolve module
# dependencies. Everything is cached under <target>/vm/<kernel-package>/, keyed by the package name
# (which carries the kernel ABI version).
#
# Usage: assets.sh CACHE_DIR [KERNEL]   (prints the cache directory of the kernel on stdout)
#   KERNEL  a Debian codename (bullseye: 5.10, bookworm: 6.1, trixie: 6.12; default bookworm), whose
#           linux-image-amd64 metapackage names the kernel package, or a kernel package name
#           (linux-image-<abi>-amd64), looked up in the release its version belongs to.
#
# Layout facts the harness relies on: Debian 11's and 12's packages put modules in lib/modules, 13's
# in usr/lib/modules (merged /usr), so lib is linked to usr/lib before `depmod -b`; modules are
# plain .ko files in 5.10 and 6.1, and .ko.xz in 6.12 (run.sh decompresses them); some drivers are
# built in (`modprobe --show-depends` prints `builtin NAME` for them, nothing to load).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache_root=$1
kernel=${2:-bookworm}
mkdir -p "$cache_root"
apt_local() { bash "$repo/scripts/apt-local.sh" "$@"; }

case $kernel in
linux-image-*)
    kpkg=$kernel
    case $kpkg in
    linux-image-5.10.*) release=bullseye ;;
    linux-image-6.1.*) release=bookworm ;;
    *+deb13*) release=trixie ;;
    *) release=${SCRATCHCRYPT_VM_RELEASE:-} ;;
    esac
    [[ -n $release ]] || {
        echo "vm-assets: cannot tell the release of $kpkg; set SCRATCHCRYPT_VM_RELEASE" >&2
        exit 1
    }
    ;;
[a-z]*)
    release=$kernel
    kpkg=""
    ;;
*)
    echo "vm-assets: KERNEL must be a codename or linux-image-*, not '$kernel'" >&2
    exit 1
    ;;
esac

# The resolved package of a codename is remembered for a day, so that a suite of many boots does not
# ask apt each time (apt-local.sh refreshes its lists daily as well).
resolved=$cache_root/.resolved-$release
if [[ -z $kpkg ]]; then
    if [[ -f $resolved ]] && [[ -n $(find "$resolved" -mmin -1440 2>/dev/null) ]]; then
        kpkg=$(cat "$resolved")
    else
        kpkg=$(apt_local "$release" apt-cache depends linux-image-amd64 2>/dev/null |
            awk '/Depends: linux-image-/ {print $2; exit}') || true
        [[ -n $kpkg ]] || {
            echo "vm-assets: cannot resolve the kernel package of linux-image-amd64 in $release" >&2
            exit 1
        }
        echo "$kpkg" >"$resolved.tmp.$$" && mv "$resolved.tmp.$$" "$resolved"
    fi
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

echo "vm-assets: downloading $kpkg ($release)" >&2
rm -rf "$dir"
tmp=$(mktemp -d "$cache_root/.dl.XXXXXX")
chmod 0777 "$tmp" # apt-get download drops privileges to _apt
(cd "$tmp" && apt_local "$release" apt-get download -q -o APT::Sandbox::User=root "$kpkg" >&2)
deb=$(ls "$tmp"/*.deb)
mkdir -p "$tmp/root"
dpkg -x "$deb" "$tmp/root"
# Merged /usr (Debian 13): modules and the rest live under usr/lib; depmod -b and modprobe -d look
# in lib/modules.
if [[ ! -d $tmp/root/lib/modules && -d $tmp/root/usr/lib/modules ]]; then
    ln -s usr/lib "$tmp/root/lib"
fi
kver=$(ls "$tmp/root/lib/modules/")
[[ -f $tmp/root/boot/vmlinuz-$kver ]] || { echo "vm-assets: $kpkg has no boot/vmlinuz-$kver" >&2; exit 1; }
depmod -b "$tmp/root" "$kver"
cp "$tmp/root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
echo "$kver" >"$tmp/kver"
echo "$release" >"$tmp/release"
rm -f "$deb"
mv "$tmp" "$dir"
touch "$dir/ready"
echo "$dir"
