# The README's main job, in the VM: scratchcrypt encrypt on the sparse test disk (mounted by
# scratchcrypt itself, with its JSON report), use the file system, show it, unmount and clean up
# with one command.
. /guest/lib.sh
kmsg_start
mkdir -p /mnt
log "scratchcrypt encrypt /dev/vda --name scratch --mount /mnt --json"
scratchcrypt encrypt /dev/vda --name scratch --mount /mnt --mount-options noatime --json \
    >/run/report.json || fail "scratchcrypt encrypt failed (status $?)"
cat /run/report.json
echo "--- device-mapper stack"
dmsetup ls
dmsetup table
echo "--- the file system"
grep " /mnt " /proc/mounts || fail "/mnt is not mounted"
echo "hello from an encrypted, integrity-protected scratch disk" >/mnt/hello || fail "write failed"
head -c 16777216 /dev/urandom >/mnt/random.bin || fail "write of 16 MiB failed"
sync
cat /mnt/hello
df -h /mnt
log "scratchcrypt cleanup scratch --unmount"
scratchcrypt cleanup scratch --unmount || fail "scratchcrypt cleanup --unmount failed"
grep -q " /mnt " /proc/mounts && fail "/mnt is still mounted"
require_no_mapping
kmsg_require_clean "main job"
pass
