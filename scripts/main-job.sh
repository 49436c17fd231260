#!/usr/bin/env bash
# The README's main job: build scratchcrypt, turn a sparse test disk into an encrypted,
# integrity-protected ext4 scratch disk, mount it, use it, show it, clean up.
#
# On a host whose kernel has dm-crypt and dm-integrity this runs natively on a loop device over a
# sparse temp file. Elsewhere (this project's build machines have no device-mapper) it boots Debian's
# kernel under qemu with the test harness (tests/vm/run.sh) and does the same inside the guest.
# Usage: scripts/main-job.sh [DISK_SIZE]   (default 1G)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1G}

bash scripts/deps.sh
cargo build --quiet --bin scratchcrypt
bin=${CARGO_TARGET_DIR:-target}/debug/scratchcrypt

native() {
    modprobe -q dm-mod 2>/dev/null || true
    modprobe -q dm-crypt 2>/dev/null || true
    modprobe -q dm-integrity 2>/dev/null || true
    grep -q device-mapper /proc/misc 2>/dev/null &&
        [[ -d /sys/module/dm_crypt && -d /sys/module/dm_integrity ]]
}

if ! native; then
    echo "main-job: no dm-crypt/dm-integrity in this kernel; running in a qemu guest" >&2
    exec bash tests/vm/run.sh --script tests/vm/guest/main_job.sh --name main-job \
        --binary "$bin" --disk-size "$size"
fi

echo "main-job: running natively on a loop device" >&2
work=$(mktemp -d)
loop="" mnt=$work/mnt
finish() {
    mountpoint -q "$mnt" && umount "$mnt"
    "$bin" cleanup main-job 2>/dev/null || true
    [[ -n $loop ]] && losetup -d "$loop"
    rm -rf "$work"
}
trap finish EXIT
truncate -s "$size" "$work/disk.img"
loop=$(losetup -f --show "$work/disk.img")
mapper=$("$bin" encrypt "$loop" --name main-job)
echo "mapping: $mapper"
mkdir -p "$mnt"
mount -t ext4 "$mapper" "$mnt"
echo "hello from an encrypted, integrity-protected scratch disk" >"$mnt/hello"
cat "$mnt/hello"
df -h "$mnt"
umount "$mnt"
"$bin" cleanup main-job
echo "main-job: done"
