#!/usr/bin/env bash
# Boot the harness kernel with an initramfs made by Debian's own mkinitramfs from the files of
# scratchcrypt's .deb, a small ext4 real root and fresh scratch disks; the real root's /sbin/init
# checks what the initramfs left (tests/vm/guest/initramfs_check.sh) and prints the verdict
# that tests/vm/run.sh judges.
#
# Why this way: mkinitramfs reads its kernel modules from /lib/modules/<version>, the kernel's
# config from /boot/config-<version> and the hooks and boot scripts from /usr/share/initramfs-tools,
# all on the host, where the harness kernel is not installed. So it runs in a private mount
# namespace (unshare -m) in which a read-only overlay puts the package's files (dpkg-deb -x of the
# .deb) over /usr, the kernel package's modules and /boot are bind-mounted in place, and an
# overlay over /etc adds the test's /etc/scratchcrypttab. Nothing outside the namespace changes.
# The initramfs is then exactly what `apt install scratchcrypt_*.deb` + `update-initramfs` would
# make on a Debian machine with that kernel and these packages (MODULES=list instead of most,
# to keep the image small for the emulated boot).
#
# Usage: initramfs.sh --deb FILE --name LABEL [--disks N] [--disk-size SIZE] [--append ARGS]
#                     [--tab LINES] [--systemd-root DIR] [--timeout SECS] [--keep]
#   --deb        the package (scripts/build-deb.sh)
#   --name       the scenario label; initramfs_check.sh chooses its checks by it
#   --disks      fresh scratch disks attached after the root disk (/dev/vdb, ...; default 1)
#   --append     kernel command-line arguments besides root= (e.g. scratchcrypt=/dev/vdb:/scratch)
#   --tab        the content of /etc/scratchcrypttab when the initramfs is built
#   --systemd-root  a debootstrapped Debian with systemd (tests/vm/sysroot.sh): the real root is a
#                copy of it with the package unpacked, the kernel modules scratchcrypt needs,
#                scratchcrypt@dev-vdb.service enabled (MOUNTPOINT=/scratch) and a check unit
#                ordered after it that runs initramfs_check.sh under systemd
# Exit status: that of tests/vm/run.sh (0 only for a complete PASS verdict), 3 on a harness error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

deb="" name="" disks=1 disk_size=512M append="" tab="" timeout=420 keep=0 systemd_root=""
while (($#)); do
    case $1 in
    --deb) deb=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --disks) disks=$2; shift 2 ;;
    --disk-size) disk_size=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;
    --tab) tab=$2; shift 2 ;;
    --systemd-root) systemd_root=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "vm-initramfs: unknown argument $1" >&2; exit 3 ;;
    esac
done
[[ -f $deb && -n $name ]] || { echo "vm-initramfs: --deb FILE and --name LABEL are required" >&2; exit 3; }

for tool in mkinitramfs unshare dpkg-deb mke2fs; do
    if ! command -v "$tool" >/dev/null; then
        echo "vm-initramfs: $tool missing, running scripts/deps.sh" >&2
        bash "$repo/scripts/deps.sh" >&2
        break
    fi
done

target_dir=${CARGO_TARGET_DIR:-$repo/target}
kdir=$(bash "$here/assets.sh" "$target_dir/vm") || { echo "vm-initramfs: asset download failed" >&2; exit 3; }
kver=$(cat "$kdir/kver")
[[ -f $kdir/root/boot/config-$kver ]] || { echo "vm-initramfs: no config-$kver in the kernel package" >&2; exit 3; }

workdir=$(mktemp -d "${TMPDIR:-/tmp}/scratchcrypt-vm-initramfs.XXXXXX")
if ((keep)); then
    echo "vm-initramfs: keeping $workdir" >&2
else
    trap 'rm -rf "$workdir"' EXIT
fi

# The package, unpacked as dpkg would install it.
stage=$workdir/stage
dpkg-deb -x "$deb" "$stage"
[[ -x $stage/usr/sbin/scratchcrypt ]] || { echo "vm-initramfs: the package has no /usr/sbin/scratchcrypt" >&2; exit 3; }
mkdir -p "$stage/usr/lib/modules" "$workdir/etc"
printf '%s\n' "$tab" >"$workdir/etc/scratchcrypttab"

# initramfs-tools configuration: the stock one but for the module list and compression.
conf=$workdir/conf
mkdir -p "$conf/conf.d" "$conf/hooks" "$conf/scripts"
sed -e 's/^MODULES=.*/MODULES=list/' -e 's/^COMPRESS=.*/COMPRESS=gzip/' \
    /etc/initramfs-tools/initramfs.conf >"$conf/initramfs.conf"
printf '%s\n' virtio_pci virtio_blk ext4 >"$conf/modules"
echo "RESUME=none" >"$conf/conf.d/resume"

initrd=$workdir/initrd.img
start=$(date +%s%N)
TMPDIR=$workdir unshare -m --propagation private bash -euo pipefail -c '
    stage=$1 kdir=$2 etc=$3 conf=$4 out=$5 kver=$6
    mount -t overlay overlay -o "lowerdir=$stage/usr:/usr" /usr
    mount --bind "$kdir/root/lib/modules" /usr/lib/modules
    mount --bind "$kdir/root/boot" /boot
    mount -t overlay overlay -o "lowerdir=$etc:/etc" /etc
    mkinitramfs -d "$conf" -o "$out" "$kver"
' initramfs "$stage" "$kdir" "$workdir/etc" "$conf" "$initrd" "$kver" >&2
end=$(date +%s%N)
echo "vm-initramfs: mkinitramfs took $(((end - start) / 1000000)) ms, $(du -k "$initrd" | cut -f1) KiB" >&2
# What the hook put in (for the log): the tool, the boot script, the table.
listing=$(lsinitramfs "$initrd" 2>/dev/null || true)
for want in usr/sbin/scratchcrypt scripts/init-bottom/scratchcrypt etc/scratchcrypttab; do
    grep -qx "$want" <<<"$listing" || { echo "vm-initramfs: $want missing from the initramfs" >&2; exit 3; }
done

# The real root: static busybox, the packaged binary with its libraries (for `status`), the
# check, lib.sh, and the mount points.
rootdir=$workdir/rootfs
if [[ -z $systemd_root ]]; then
mkdir -p "$rootdir"/{bin,sbin,usr/sbin,proc,sys,dev,run,tmp,guest,scratch,scratch2}
cp /bin/busybox "$rootdir/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ $applet == busybox || -e $rootdir/bin/$applet ]] || ln -s busybox "$rootdir/bin/$applet"
done
cp "$stage/usr/sbin/scratchcrypt" "$rootdir/usr/sbin/scratchcrypt"
for lib in $(ldd "$stage/usr/sbin/scratchcrypt" | grep -o '/[^ ]*') /lib/x86_64-linux-gnu/libgcc_s.so.1; do
    mkdir -p "$rootdir$(dirname "$lib")"
    [[ -e $rootdir$lib ]] || cp -L "$lib" "$rootdir$lib"
done
cp "$here/guest/initramfs_root_init" "$rootdir/sbin/init"
chmod +x "$rootdir/sbin/init"
cp "$here/guest/lib.sh" "$here/guest/initramfs_check.sh" "$rootdir/guest/"
echo "$name" >"$rootdir/guest/name"
mke2fs -q -F -t ext4 -L root -d "$rootdir" "$workdir/root.img" 96M
rootargs="root=/dev/vda rootfstype=ext4 ro init=/sbin/init"
else
    # A real Debian userland with systemd and udev; the package as dpkg would unpack it.
    cp -a "$systemd_root" "$rootdir"
    rm -f "$rootdir/.ready"
    dpkg-deb -x "$deb" "$rootdir"
    # The harness kernel's modules that scratchcrypt needs, indexed for modprobe.
    for m in dm_mod dm_crypt dm_integrity authenc xts hmac sha256_generic crc32c_generic; do
        modprobe -d "$kdir/root" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
    done | sort -u | while read -r ko; do
        rel=${ko#"$kdir/root"}
        mkdir -p "$rootdir$(dirname "$rel")"
        cp "$ko" "$rootdir$rel"
    done
    cp "$kdir/root/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$rootdir/lib/modules/$kver/"
    depmod -b "$rootdir" "$kver"
    mkdir -p "$rootdir/guest" "$rootdir/scratch" "$rootdir/etc/systemd/system/local-fs.target.wants" \
        "$rootdir/etc/systemd/system/multi-user.target.wants" \
        "$rootdir/etc/systemd/system/scratchcrypt@dev-vdb.service.d"
    cp "$here/guest/lib.sh" "$here/guest/initramfs_check.sh" "$rootdir/guest/"
    cp "$here/guest/initramfs_root_init" "$rootdir/guest/run"
    echo "$name" >"$rootdir/guest/name"
    echo "/dev/vda / ext4 rw 0 0" >"$rootdir/etc/fstab"
    ln -s /usr/lib/systemd/system/scratchcrypt@.service \
        "$rootdir/etc/systemd/system/local-fs.target.wants/scratchcrypt@dev-vdb.service"
    printf '[Service]\nEnvironment=MOUNTPOINT=/scratch\n' \
        >"$rootdir/etc/systemd/system/scratchcrypt@dev-vdb.service.d/test.conf"
    cat >"$rootdir/etc/systemd/system/scratchcrypt-vmcheck.service" <<'UNIT'
[Unit]
Description=scratchcrypt VM check (tests/vm/guest/initramfs_check.sh)
Wants=scratchcrypt@dev-vdb.service
After=scratchcrypt@dev-vdb.service local-fs.target
# Before the gettys: a login prompt on the shared console once landed in front of the verdict
# line ("vm login: SCRATCHCRYPT-VM: PASS ..."), which then was no verdict.
Before=getty.target serial-getty@ttyS0.service
[Service]
Type=oneshot
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
ExecStart=/bin/sh /guest/run
UNIT
    ln -s ../scratchcrypt-vmcheck.service "$rootdir/etc/systemd/system/multi-user.target.wants/"
    mke2fs -q -F -t ext4 -L root -d "$rootdir" "$workdir/root.img" 1G
    rm -rf "$rootdir"
    rootargs="root=/dev/vda rootfstype=ext4 rw"
fi

bash "$here/run.sh" --initrd "$initrd" --root-disk "$workdir/root.img" --name "$name" \
    --disks "$disks" --disk-size "$disk_size" --timeout "$timeout" --workdir "$workdir/vm" \
    --append "$rootargs${append:+ $append}"
