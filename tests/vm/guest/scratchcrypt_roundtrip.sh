# Scenario 2: scratchcrypt encrypt -> mount -> write and read files -> umount -> e2fsck -fn clean ->
# scratchcrypt cleanup -> no mapping left; the kernel log stays clean throughout.
. /guest/lib.sh
kmsg_start
log "scratchcrypt encrypt /dev/vda --name rt"
mapper=$(scratchcrypt encrypt /dev/vda --name rt) || fail "scratchcrypt encrypt failed (status $?)"
[ -b "$mapper" ] || fail "scratchcrypt encrypt printed '$mapper', which is not a block device"
mkdir -p /mnt
mount -t ext4 "$mapper" /mnt || fail "mount -t ext4 $mapper failed"
i=0
while [ $i -lt 50 ]; do echo "file $i" >/mnt/f$i || fail "write /mnt/f$i failed"; i=$((i + 1)); done
head -c 4194304 /dev/urandom >/mnt/blob || fail "write /mnt/blob failed"
sum=$(sha256sum /mnt/blob | cut -d' ' -f1)
umount /mnt || fail "umount failed"
e2fsck -fn "$mapper" || fail "e2fsck -fn found problems on $mapper"
mount -t ext4 "$mapper" /mnt || fail "remount failed"
i=0
while [ $i -lt 50 ]; do
    read -r got </mnt/f$i
    [ "$got" = "file $i" ] || fail "/mnt/f$i reads '$got'"
    i=$((i + 1))
done
[ "$(sha256sum /mnt/blob | cut -d' ' -f1)" = "$sum" ] || fail "/mnt/blob checksum mismatch"
umount /mnt || fail "final umount failed"
scratchcrypt cleanup rt || fail "scratchcrypt cleanup failed (status $?)"
require_no_mapping
kmsg_require_clean "encrypt, mount, files, e2fsck, cleanup"
pass
