#!/usr/bin/env bash
# Build the self-contained scratchcrypt: libcryptsetup, libdevmapper and glibc linked statically.
#
# Why: the tool runs from minimal initramfs images; the default (dynamic) build needs 13 shared
# libraries there. Debian ships no static libcryptsetup or libdevmapper, so this script fetches
# Debian's own source packages by name (`apt-get source cryptsetup lvm2`, through the project-local
# apt configuration of scripts/apt-local.sh, never /etc/apt), builds only the two libraries, with only what scratchcrypt uses:
#   - libdevmapper (lvm2's libdm): no udev sync, no SELinux, no blkid, no dmeventd;
#   - libcryptsetup: no external token plugins (so no dlopen), no SSH token, no udev, no SELinux,
#     no blkid, no argon2 (we never run a PBKDF but PBKDF2 for the volume-key digest), no
#     reencryption, no NLS, no command-line tools; crypto backend `kernel` (AF_ALG, the default)
#     or `openssl` (Debian's static libcrypto.a), see docs/BENCHMARKS.md for the comparison;
# and links scratchcrypt against them and a static glibc (`-C target-feature=+crt-static`, an
# explicit `--target` so build scripts and bindgen's libclang stay dynamic). json-c and libuuid
# come from Debian's static archives (libjson-c-dev, uuid-dev), libext2fs as in every build.
#
# The libraries are cached under <target>/static/libs/, keyed by both source package versions,
# the backend and a hash of the configure recipe below; the cargo build has its own target dir
# (<target>/static/cargo), so the default `cargo build` is untouched.
#
# Usage: build-static.sh [--crypto kernel|openssl]
#   Prints the path of the stripped static binary (<target>/static/bin/scratchcrypt-<crypto>) on
#   stdout; everything else goes to stderr. Fails if the result has an ELF interpreter or any
#   NEEDED entry.
# Relinking (LGPL): SCRATCHCRYPT_STATIC_PREFIX=DIR skips the library build and links against the
#   libcryptsetup.a/libdevmapper.a and their .pc files installed under DIR (DIR/lib/pkgconfig),
#   e.g. modified copies of the libraries (vendor-notes.md, "Static build").
set -eEuo pipefail
# A command that fails under set -e names itself: the caller (vmharness::build_script) shows
# our stderr, and a silent exit once hid why a fresh machine failed (issue 23).
trap 'echo "build-static: failed (status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
crypto=kernel
while (($#)); do
    case $1 in
    --crypto) crypto=$2; shift 2 ;;
    *) echo "build-static: unknown argument $1" >&2; exit 2 ;;
    esac
done
case $crypto in
kernel) backend=(--with-crypto_backend=kernel) ;;
openssl) backend=(--with-crypto_backend=openssl --disable-kernel_crypto) ;;
*) echo "build-static: --crypto must be kernel or openssl" >&2; exit 2 ;;
esac

CFLAGS_LIBS="-O2 -fPIC -ffunction-sections -fdata-sections"
LVM2_CONFIGURE=(--enable-static_link --enable-pkgconfig --disable-selinux --disable-udev_sync
    --disable-udev_rules --disable-blkid_wiping --disable-readline --disable-systemd-journal
    --disable-app-machineid --disable-udev-systemd-background-jobs --disable-nls --disable-dmeventd
    --disable-cmdlib --disable-lvmpolld --disable-blkdeactivate --disable-fsadm --disable-dbus-service
    --disable-notify-dbus --with-thin=none --with-cache=none --with-vdo=none --with-writecache=none
    --with-integrity=none)
CRYPTSETUP_CONFIGURE=(--disable-shared --enable-static --disable-asciidoc --disable-ssh-token
    --disable-external-tokens --disable-luks2-reencryption --disable-cryptsetup --disable-veritysetup
    --disable-integritysetup --disable-selinux --disable-udev --disable-blkid --disable-nls
    --disable-internal-argon2 --disable-fips "${backend[@]}")

log() { echo "build-static: $*" >&2; }

bash "$repo/scripts/deps.sh" >&2
static=${CARGO_TARGET_DIR:-$repo/target}/static
mkdir -p "$static"
exec 9>"$static/.lock" # one build at a time (a test and a developer may start it together)
flock 9

# Source packages come through the project-local apt configuration of the host's release
# (scripts/apt-local.sh: its own deb-src sources, lists and cache under <target>/apt/), so neither
# a missing deb-src entry on the host nor one that an earlier run left there changes the result.
. /etc/os-release
apt_local() { bash "$repo/scripts/apt-local.sh" "$VERSION_CODENAME" "$@"; }

# The version `apt-get source <pkg>` would fetch, from the .dsc name it prints. Errors are not
# swallowed: a failing apt says why on stderr, and the caller stops with the package's name.
src_version() { # PKG
    local uris
    uris=$(apt_local apt-get source --print-uris "$1") || { log "apt-get source --print-uris $1 failed"; return 1; }
    grep -o "'[^']*/$1_[^/']*\.dsc'" <<<"$uris" | sed -e "s|.*/$1_||" -e "s|\.dsc'$||" -e 's|%7e|~|g' | head -n 1
}

if [[ -n ${SCRATCHCRYPT_STATIC_PREFIX:-} ]]; then
    prefix=$SCRATCHCRYPT_STATIC_PREFIX
    log "using the libraries under $prefix (SCRATCHCRYPT_STATIC_PREFIX)"
else
    cs_ver=$(src_version cryptsetup) || { log "cannot resolve the source package cryptsetup"; exit 1; }
    lvm_ver=$(src_version lvm2) || { log "cannot resolve the source package lvm2"; exit 1; }
    [[ -n $cs_ver && -n $lvm_ver ]] || { log "cannot resolve the source packages cryptsetup and lvm2"; exit 1; }
    recipe=$(printf '%s\n' "$CFLAGS_LIBS" "${LVM2_CONFIGURE[*]}" "${CRYPTSETUP_CONFIGURE[*]}" | sha256sum | cut -c1-10)
    prefix=$static/libs/cryptsetup_$cs_ver-lvm2_$lvm_ver-$crypto-$recipe
    if [[ -f $prefix/ready ]]; then
        log "cached: $prefix"
    else
        log "building libdevmapper (lvm2 $lvm_ver) and libcryptsetup (cryptsetup $cs_ver, $crypto backend)"
        t0=$(date +%s)
        rm -rf "$prefix"
        work=$(mktemp -d "$static/.build.XXXXXX")
        trap 'rm -rf "$work"' EXIT
        chmod 0777 "$work" # apt-get source may drop privileges to _apt
        (cd "$work" && apt_local apt-get source -q cryptsetup lvm2 >&2)
        ls "$work/cryptsetup_$cs_ver.dsc" "$work/lvm2_$lvm_ver.dsc" >/dev/null # fetched what we keyed on
        jobs=${CARGO_BUILD_JOBS:-2}
        out=$work/prefix
        mkdir -p "$out/lib/pkgconfig" "$out/include" "$out/source"

        lvm=$(find "$work" -maxdepth 1 -type d -name 'lvm2-*' | head -n 1)
        (cd "$lvm" && ./configure -q --prefix="$out" "${LVM2_CONFIGURE[@]}" CFLAGS="$CFLAGS_LIBS" >&2 &&
            make -s -j"$jobs" -C libdm ioctl/libdevmapper.a >&2)
        cp "$lvm/libdm/ioctl/libdevmapper.a" "$out/lib/"
        cp "$lvm/libdm/libdevmapper.h" "$out/include/"
        sed "s|^prefix=.*|prefix=$prefix|" "$lvm/libdm/libdevmapper.pc" >"$out/lib/pkgconfig/devmapper.pc"

        cs=$(find "$work" -maxdepth 1 -type d -name 'cryptsetup-*' | head -n 1)
        (cd "$cs" && ./autogen.sh >/dev/null 2>&1 &&
            PKG_CONFIG_PATH=$out/lib/pkgconfig ./configure -q --prefix="$out" "${CRYPTSETUP_CONFIGURE[@]}" \
                CFLAGS="$CFLAGS_LIBS" >&2 &&
            make -s -j"$jobs" libcryptsetup.la >&2 &&
            make -s install-libLTLIBRARIES install-includeHEADERS install-pkgconfigDATA >&2)
        rm -f "$out/lib/"*.la
        sed -i "s|^prefix=.*|prefix=$prefix|" "$out/lib/pkgconfig/libcryptsetup.pc"
        # The corresponding source of what we link (the licences ask for it; vendor-notes.md).
        cp "$work"/*.dsc "$work"/*.tar.* "$out/source/"
        printf 'cryptsetup %s\nlvm2 %s\ncrypto %s\n' "$cs_ver" "$lvm_ver" "$crypto" >"$out/versions"
        mkdir -p "$(dirname "$prefix")"
        mv "$out" "$prefix"
        touch "$prefix/ready"
        rm -rf "$work"
        trap - EXIT
        log "libraries built in $(($(date +%s) - t0)) s: $prefix"
    fi
fi

# The static link. PKG_CONFIG_ALL_STATIC makes every pkg-config probe (libcryptsetup-rs-sys,
# devicemapper-sys) ask for --static link lines; feature `static` tells libcryptsetup-rs-sys the
# same; crt-static makes the linker take the .a of every -l (json-c, uuid, libc).
triple=x86_64-unknown-linux-gnu
t0=$(date +%s)
(cd "$repo" && env -u CARGO_ENCODED_RUSTFLAGS -u RUSTC_WORKSPACE_WRAPPER \
    PKG_CONFIG_PATH="$prefix/lib/pkgconfig" PKG_CONFIG_ALL_STATIC=1 \
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$static/cargo" \
    cargo build --release --locked --target "$triple" --features static --bin scratchcrypt >&2)
log "cargo build took $(($(date +%s) - t0)) s"
built=$static/cargo/$triple/release/scratchcrypt
mkdir -p "$static/bin"
bin=$static/bin/scratchcrypt-$crypto
strip -o "$bin.tmp" "$built"
mv "$bin.tmp" "$bin"
if readelf -lW "$bin" | grep -q 'INTERP' || readelf -dW "$bin" | grep -q '(NEEDED)'; then
    log "$bin is not static:"
    readelf -dW "$bin" | grep NEEDED >&2 || true
    exit 1
fi
log "$bin: $(stat -c %s "$bin") bytes, static"
echo "$bin"
