# The README's main job, in the VM: scratchcrypt encrypt on the sparse test disk, mount the result,
# use it, show it, clean up.
. /guest/lib.sh
kmsg_start
log "scratchcrypt encrypt /dev/vda --name scratch"
mapper=$(scratchcrypt encrypt /dev/vda --name scratch) || fail "scratchcrypt encrypt failed (status $?)"
echo "mapping: $mapper"
dmsetup ls
mkdir -p /mnt
mount -t ext4 "$mapper" /mnt || fail "mount -t ext4 $mapper failed"
echo "hello from an encrypted, integrity-protected scratch disk" >/mnt/hello || fail "write failed"
cat /mnt/hello
df -h /mnt
umount /mnt || fail "umount failed"
scratchcrypt cleanup scratch || fail "scratchcrypt cleanup failed"
require_no_mapping
kmsg_require_clean "main job"
pass
