#!/usr/bin/env bash
# Boot one qemu TCG guest that runs one scenario script against a sparse raw test disk.
#
# Why: neither this machine's kernel nor CI's has device-mapper, so everything that needs dm-crypt or
# dm-integrity runs inside Debian's own kernel under pure emulation (nested KVM hangs here). The guest is
# a busybox initramfs built per run; only the kernel and its modules are cached (see assets.sh).
#
# Usage:
#   run.sh --script FILE [--binary PATH] [--disk-size SIZE] [--name LABEL] [--timeout SECS]
#          [--file PATH]... [--exe PATH]... [--workdir DIR] [--keep] [--xfs] [--hotplug] [--no-libs]
#   run.sh --initrd FILE --name LABEL [--root-disk FILE] [--append ARGS] [--disks N] ...
#
#   --script     guest script; it runs as /guest/scenario.sh with LABEL as $1, after sourcing nothing:
#                it may `. /guest/lib.sh` (tests/vm/guest/lib.sh: stress, kernel-log check, verdicts)
#   --binary     scratchcrypt binary to put at /usr/local/bin/scratchcrypt (with its shared libraries)
#   --disk-size  size of the sparse raw disk attached as /dev/vda (default 1G; truncate syntax); a
#                comma-separated list gives the disks their sizes in turn, cycling (4G,32G: vda 4G,
#                vdb 32G, vdc 4G, ...), for comparisons of sizes within one boot
#   --disks      how many such fresh disks to attach (/dev/vda, /dev/vdb, ...; default 1)
#   --name       scenario label passed to the script (default: script name without .sh)
#   --timeout    seconds before qemu is killed (default 600)
#   --file       extra host file copied into the guest at /guest/<basename> (repeatable)
#   --exe        extra host program copied with its shared libraries to /usr/local/bin/<basename>
#                (repeatable; e.g. a test binary that must run where root has every capability)
#   --module     extra kernel module loaded at boot, with its dependencies (repeatable; e.g. raid1)
#   --workdir    where the initramfs, disk and console log go (default: a fresh temp dir, removed at
#                the end unless --keep)
#   --xfs        also put mkfs.xfs, xfs_repair and the xfs module into the guest (VM benchmark's
#                hcsshim recipe; off by default to keep the other boots small)
#   --hotplug    attach the disks as hot-unpluggable virtio-blk-pci devices disk0, disk1, ... and
#                let the guest remove one: when the console prints `SCRATCHCRYPT-VM: UNPLUG diskN`,
#                the host sends QMP `device_del diskN` (the disk goes away mid-run, issue 14)
#   --initrd     boot this initramfs instead of building the busybox one (--script is then not
#                needed; tests/vm/initramfs.sh passes one made by Debian's mkinitramfs)
#   --root-disk  raw disk image attached first, as /dev/vda, before the fresh disks (which then
#                start at /dev/vdb); the real root of an --initrd boot
#   --append     extra kernel command-line arguments (e.g. root=/dev/vda scratchcrypt=...)
#   --no-libs    a guest without any shared library: no /lib, no /usr/lib, no dynamic oracle tools
#                (cryptsetup, dmsetup, ...); only static busybox, Debian's static e2fsck
#                (e2fsck-static) as /usr/sbin/e2fsck, and --binary/--file programs, each of which
#                must be a static executable (checked; status 3 otherwise). Modules go to /modules.
#
# The guest console is streamed to stdout. The guest prints `SCRATCHCRYPT-VM: PASS <label>` or
# `SCRATCHCRYPT-VM: FAIL <label>: <reason>`, then `SCRATCHCRYPT-VM: END <label>` (from /init, after its
# own kernel-log check), and powers off. Exit status: 0 only when qemu exited by itself with status 0,
# the console holds a PASS verdict for <label>, no FAIL verdict and the END marker after the PASS;
# 1 on a FAIL verdict, 2 when the guest gave no complete verdict (crash, timeout, qemu error, missing
# END: a PASS followed by a timeout is a failure), 3 on a harness error. Timeouts kill qemu.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

script="" binary="" disk_size=1G disks=1 name="" timeout=600 workdir="" keep=0 xfs=0 hotplug=0
initrd="" root_disk="" append="" nolibs=0
extra=() exes=() extra_modules=()
while (($#)); do
    case $1 in
    --script) script=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --disk-size) disk_size=$2; shift 2 ;;
    --disks) disks=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --file) extra+=("$2"); shift 2 ;;
    --exe) exes+=("$2"); shift 2 ;;
    --module) extra_modules+=("$2"); shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --xfs) xfs=1; shift ;;
    --hotplug) hotplug=1; shift ;;
    --initrd) initrd=$2; shift 2 ;;
    --root-disk) root_disk=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;
    --no-libs) nolibs=1; shift ;;
    *) echo "vm: unknown argument $1" >&2; exit 3 ;;
    esac
done
if [[ -n $initrd ]]; then
    [[ -f $initrd && -n $name ]] || { echo "vm: --initrd FILE needs an existing FILE and --name" >&2; exit 3; }
    [[ -z $root_disk || -f $root_disk ]] || { echo "vm: --root-disk $root_disk missing" >&2; exit 3; }
else
[[ -n $script && -f $script ]] || { echo "vm: --script FILE is required" >&2; exit 3; }
[[ -z $binary || -x $binary ]] || { echo "vm: --binary $binary is not executable" >&2; exit 3; }
[[ -n $name ]] || name=$(basename "$script" .sh)
fi

# Host tools: install the missing ones through the project's only install path.
host_tools=(qemu-system-x86_64 cpio depmod modprobe cryptsetup dmsetup mke2fs e2fsck)
((xfs)) && host_tools+=(mkfs.xfs xfs_repair)
((hotplug)) && host_tools+=(python3)
((nolibs)) && host_tools+=(e2fsck.static readelf)
for tool in "${host_tools[@]}"; do
    if ! command -v "$tool" >/dev/null; then
        echo "vm: $tool missing, running scripts/deps.sh" >&2
        bash "$repo/scripts/deps.sh" >&2
        break
    fi
done
busybox_bin=/bin/busybox # from busybox-static: it must not need shared libraries in the guest
[[ -x $busybox_bin ]] || { echo "vm: $busybox_bin missing (package busybox-static)" >&2; exit 3; }

target_dir=${CARGO_TARGET_DIR:-$repo/target}
kdir=$(bash "$here/assets.sh" "$target_dir/vm") || { echo "vm: asset download failed" >&2; exit 3; }
kver=$(cat "$kdir/kver")

if [[ -z $workdir ]]; then
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/scratchcrypt-vm.XXXXXX")
    [[ $keep == 1 ]] || trap 'rm -rf "$workdir"' EXIT
else
    mkdir -p "$workdir"
fi
# The busybox initramfs, unless --initrd brought one (the block is not indented, to keep it as it was).
if [[ -z $initrd ]]; then
root=$workdir/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,proc,sys,dev,run,tmp,mnt,guest,etc}
moddir=/lib/modules
((nolibs)) && moddir=/modules
mkdir -p "$root$moddir"

# busybox: the binary goes to /bin/busybox; never create an applet link named busybox (it would
# replace the binary by a link to itself).
cp "$busybox_bin" "$root/bin/busybox"
for applet in $("$busybox_bin" --list); do
    [[ $applet == busybox ]] && continue
    [[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
done

# Copy a dynamically linked host program and the shared libraries ldd reports.
copy_with_libs() { # SRC DEST_IN_ROOT
    local src=$1 dst=$2 lib
    mkdir -p "$root$(dirname "$dst")"
    cp -L "$src" "$root$dst"
    for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*'); do
        [[ -e $root$lib ]] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# An ELF file with an interpreter or a NEEDED entry needs shared libraries (--no-libs).
is_static() { ! readelf -lW "$1" | grep -q INTERP && ! readelf -dW "$1" | grep -q '(NEEDED)'; }
if ((nolibs)); then
    for f in "$busybox_bin" /sbin/e2fsck.static ${binary:+"$binary"} "${extra[@]}"; do
        [[ $(head -c 4 "$f") != $'\x7fELF' ]] || is_static "$f" ||
            { echo "vm: --no-libs: $f is dynamically linked" >&2; exit 3; }
    done
    cp /sbin/e2fsck.static "$root/usr/sbin/e2fsck"
    [[ -z $binary ]] || cp "$binary" "$root/usr/local/bin/scratchcrypt"
fi

# Oracles for the tests only (the product must not need them). GNU dd is there for conv=sparse,
# which busybox dd lacks.
((nolibs)) || for tool in cryptsetup dmsetup e2fsck dumpe2fs debugfs mke2fs blkid losetup xfs_io; do
    p=$(command -v "$tool") || { echo "vm: host tool $tool missing" >&2; exit 3; }
    copy_with_libs "$p" "/usr/sbin/$tool"
done
((nolibs)) || ln -s mke2fs "$root/usr/sbin/mkfs.ext4"
if ((xfs)); then
    for tool in mkfs.xfs xfs_repair; do
        p=$(command -v "$tool") || { echo "vm: host tool $tool missing (package xfsprogs)" >&2; exit 3; }
        copy_with_libs "$p" "/usr/sbin/$tool"
    done
fi
((nolibs)) || copy_with_libs "$(command -v dd)" /usr/bin/gdd
cp /etc/mke2fs.conf "$root/etc/mke2fs.conf"
# glibc loads libgcc_s on thread cancellation; libcryptsetup uses threads.
((nolibs)) || for lib in /lib/x86_64-linux-gnu/libgcc_s.so.1; do
    [[ -e $lib && ! -e $root$lib ]] && cp -L "$lib" "$root$lib"
done
if [[ -n $binary ]] && ((!nolibs)); then
    copy_with_libs "$binary" /usr/local/bin/scratchcrypt
fi
for exe in "${exes[@]}"; do
    [[ -x $exe ]] || { echo "vm: --exe $exe is not executable" >&2; exit 3; }
    ((nolibs)) && { echo "vm: --exe does not combine with --no-libs" >&2; exit 3; }
    copy_with_libs "$exe" "/usr/local/bin/$(basename "$exe")"
done

# Kernel modules, in dependency order, loaded by /init with insmod.
modules=(virtio_pci virtio_blk loop dm-crypt dm-integrity ext4 xts authenc crc32c_generic hmac
    sha256_generic sha256_ssse3 aesni_intel algif_skcipher algif_hash fuse)
((xfs)) && modules+=(xfs)
modules+=("${extra_modules[@]}")
: >"$root/guest/modules"
for m in "${modules[@]}"; do
    modprobe -d "$kdir/root" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$root$moddir/"
    echo "$moddir/$(basename "$ko")" >>"$root/guest/modules"
done

cp "$here/guest/init" "$root/init"
chmod +x "$root/init"
cp "$here"/guest/*lib.sh "$root/guest/"
cp "$script" "$root/guest/scenario.sh"
echo "$name" >"$root/guest/name"
for f in "${extra[@]}"; do cp "$f" "$root/guest/"; done
if ((nolibs)); then # nothing in the image may need or be a shared library
    found=$(cd "$root" && { ls -d lib lib64 usr/lib usr/lib64 2>/dev/null; find . -name '*.so*'; })
    [[ -z $found ]] || { echo "vm: --no-libs: shared-library paths in the initramfs: $found" >&2; exit 3; }
fi

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$workdir/initramfs.cpio"
initrd=$workdir/initramfs.cpio
fi

drives=()
IFS=, read -r -a disk_sizes <<<"$disk_size"
[[ -z $root_disk ]] || drives+=(-drive "file=$root_disk,if=virtio,format=raw,cache=unsafe")
for ((i = 0; i < disks; i++)); do
    disk=$workdir/disk$i.img
    rm -f "$disk"
    truncate -s "${disk_sizes[i % ${#disk_sizes[@]}]}" "$disk"
    if ((hotplug)); then
        drives+=(-drive "file=$disk,if=none,id=drv$i,format=raw,cache=unsafe"
            -device "virtio-blk-pci,drive=drv$i,id=disk$i")
    else
        drives+=(-drive "file=$disk,if=virtio,format=raw,cache=unsafe")
    fi
done
if ((hotplug)); then
    qmp=$workdir/qmp.sock
    drives+=(-qmp "unix:$qmp,server=on,wait=off")
fi

console=$workdir/console.log
: >"$console"
# The unplug watcher: QMP device_del for each `SCRATCHCRYPT-VM: UNPLUG diskN` on the console.
watcher=""
if ((hotplug)); then
    (
        tail -n +1 -F "$console" 2>/dev/null | while IFS= read -r line; do
            case $line in
            *"SCRATCHCRYPT-VM: UNPLUG disk"*)
                id=${line##*UNPLUG }
                id=${id%%[!a-z0-9]*}
                python3 - "$qmp" "$id" <<'PY' >&2 || echo "vm: device_del $id failed" >&2
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()  # the greeting
for cmd in ({"execute": "qmp_capabilities"},
            {"execute": "device_del", "arguments": {"id": sys.argv[2]}}):
    f.write(json.dumps(cmd) + "\n")
    f.flush()
    print("vm: qmp", cmd["execute"], f.readline().strip())
PY
                ;;
            esac
        done
    ) &
    watcher=$!
fi
echo "vm: booting $kver, scenario $name, $disks disk(s) of $disk_size, timeout ${timeout}s" >&2
echo "vm: booting $kver, scenario $name, $disks disk(s) of $disk_size${root_disk:+ after the root disk}, timeout ${timeout}s" >&2
start=$(date +%s)
set +e
timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -m 2048 -smp 2 -nographic -no-reboot \
    -kernel "$kdir/vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 loglevel=1 log_buf_len=8M rdinit=/init${append:+ $append}" \
    "${drives[@]}" \
    </dev/null 2>&1 | tee "$console"
qrc=${PIPESTATUS[0]}
[[ -z $watcher ]] || { pkill -P "$watcher" 2>/dev/null; kill "$watcher" 2>/dev/null; }
set -e
end=$(date +%s)
echo "vm: qemu exited with status $qrc after $((end - start))s" >&2

# Console lines may end in \r (serial console); compare without it.
pass_line=$(grep -n -x "SCRATCHCRYPT-VM: PASS $name"$'\r*' "$console" | head -n 1 | cut -d: -f1 || true)
end_line=$(grep -n -x "SCRATCHCRYPT-VM: END $name"$'\r*' "$console" | tail -n 1 | cut -d: -f1 || true)
# A FAIL counts anywhere on a line: the serial console interleaves kernel messages with the
# guest's output, so a verdict can start mid-line. (PASS must be a whole line: it cannot be faked
# by a message that merely quotes it.)
if grep -q "SCRATCHCRYPT-VM: FAIL " "$console"; then
    grep "SCRATCHCRYPT-VM: FAIL " "$console" >&2
    exit 1
fi
if ((qrc == 124 || qrc == 137)); then
    echo "vm: TIMEOUT after ${timeout}s, qemu killed${pass_line:+ (after a PASS line: still a failure)}" >&2
    exit 2
fi
if ((qrc != 0)); then
    echo "vm: qemu exited with status $qrc: no trustworthy verdict" >&2
    exit 2
fi
if [[ -z $pass_line ]]; then
    echo "vm: the guest gave no PASS verdict for $name; last console lines:" >&2
    tail -n 30 "$console" >&2
    exit 2
fi
if [[ -z $end_line ]] || ((end_line < pass_line)); then
    echo "vm: no END marker after the PASS verdict: the guest did not finish its checks" >&2
    tail -n 30 "$console" >&2
    exit 2
fi
exit 0
