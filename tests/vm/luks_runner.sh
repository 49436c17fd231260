#!/usr/bin/env bash
# Boot a qemu TCG guest that runs one guest script against a fresh sparse virtio disk.
#
#   luks_runner.sh <binary> <guest-script> <disk-size> [module-to-leave-out ...]
#
# The shared harness (tests/vm/run.sh) is preferred by tests/vm_luks.rs when it exists; this
# runner keeps the luks VM tests runnable on a branch without it.
#
# The guest is Debian 12's kernel (downloaded once with `apt-get download`, cached under
# $SCRATCHCRYPT_VM_CACHE, default target/vm-luks) with a busybox-static initramfs holding
# <binary>, cryptsetup and dmsetup (with their shared libraries) and the modules for
# dm-crypt, dm-integrity and virtio. The script runs as /test.sh with the disk as /dev/vda;
# its output is printed, followed by "=== guest exit <status>".
#
# This is the luks module's own runner, written while the shared VM harness did not exist yet;
# the recipe is the one in FACTS.md. It does not replace the shared harness.
set -euo pipefail
BIN=$1; SCRIPT=$2; SIZE=$3; shift 3; SKIP=" $* "
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${SCRATCHCRYPT_VM_CACHE:-$ROOT/target/vm-luks}
mkdir -p "$CACHE"

# Kernel and modules, once (serialised between concurrent runners).
exec 9>"$CACHE/.lock"; flock 9
if [ ! -e "$CACHE/ready" ]; then
    pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}'; }
    rm -rf "$CACHE/root" "$CACHE"/*.deb
    PKG=$(pkg)
    if [ -z "$PKG" ] || ! (cd "$CACHE" && apt-get download "$PKG" >/dev/null 2>&1); then
        apt-get update -qq   # stale or missing package lists on a fresh machine
        PKG=$(pkg)
        (cd "$CACHE" && apt-get download "$PKG" >/dev/null)
    fi
    dpkg -x "$CACHE"/linux-image-*.deb "$CACHE/root"
    rm -f "$CACHE"/linux-image-*.deb
    KV=$(ls "$CACHE/root/lib/modules")
    depmod -b "$CACHE/root" "$KV"
    for m in dm-crypt dm-integrity virtio_blk virtio_pci xts authenc crc32c_generic; do
        modprobe -d "$CACHE/root" -S "$KV" --show-depends "$m" | awk '$1=="insmod"{print $2}'
    done | awk '!seen[$0]++' > "$CACHE/modules.txt"
    touch "$CACHE/ready"
fi
flock -u 9
KV=$(ls "$CACHE/root/lib/modules")

WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
R=$WORK/initramfs
mkdir -p "$R"/{bin,proc,sys,dev,run,tmp,mods}
cp /bin/busybox "$R/bin/busybox"
for b in "$BIN" /usr/sbin/cryptsetup /usr/sbin/dmsetup; do
    cp "$b" "$R/bin/"
    for l in $(ldd "$b" | grep -o '/[^ ]*'); do
        mkdir -p "$R$(dirname "$l")"; cp -L "$l" "$R$l"
    done
done
i=0
while read -r m; do
    base=$(basename "$m" .ko)
    [[ "$SKIP" == *" $base "* ]] && continue
    i=$((i + 1)); cp "$m" "$R/mods/$(printf %02d $i)-$base.ko"
done < "$CACHE/modules.txt"
cp "$SCRIPT" "$R/test.sh"
basename "$SCRIPT" .sh > "$R/label"
cat > "$R/init" <<'IN'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp; mkdir -p /run/cryptsetup
for m in /mods/*.ko; do insmod "$m" 2>/dev/null; done
echo "=== guest start"
sh /test.sh "$(cat /label)"; echo "=== guest exit $?"
poweroff -f
IN
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initrd.gz"
truncate -s "$SIZE" "$WORK/disk.img"
timeout 900 qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 1024 -smp 2 -nographic \
    -no-reboot -kernel "$CACHE/root/boot/vmlinuz-$KV" -initrd "$WORK/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1" \
    -drive "if=virtio,file=$WORK/disk.img,format=raw,cache=unsafe" 2>&1 \
    | tr -d '\r' | sed -n '/=== guest start/,$p'
