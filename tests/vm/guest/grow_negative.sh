# Negative controls of the online growth (issue 13): the `grow_unzeroed` example (installed as
# `scratchcrypt` here) makes a fast start and grows it while skipping part of what scratchcrypt
# zeroes before each resize step. The kernel must hit a never-written block each time — the
# proof that the growth test (fast_start.sh) would see a missing zero range. The control of the
# control, with everything zeroed, must grow cleanly.
# Disks: /dev/vda 2 GiB; /dev/vdb 8 GiB (a growth in several steps: encrypt writes the mapping's
# last block itself, so only an intermediate step's last block is never written); /dev/vdc
# 10 GiB, the control: it grows from 512 MiB past 64 groups (8 GiB), so a resize step takes a
# second group-descriptor block out of the reserved GDT blocks (issue 23, item 3): the reserve is
# exactly that one block (issue 27: no more than the growth to the device's size takes), so the
# growth uses up the whole reserve.
#
# Each control must fail in the growth (exit 1, "growth failed: ..."), never in the encrypt
# before it (exit 3), and the kernel must name the block the control left unwritten:
# - no-bitmaps: the first new chunk (groups 4..15, from block 131072 = sector 1048576) gets its
#   block and inode bitmaps at the chunk's start; the first AEAD sector must fall there
#   (measured: 1048672, the inode bitmap of group 4; the resize then fails with EIO);
# - no-last-block: the first step's new last block, block 524287 = sector 4194296 (2 GiB - 4 KiB;
#   the resize then fails with ENOSPC).
. /guest/lib.sh
KMSG_EXPECT_ERRORS=1
mkdir -p /mnt/ctl /mnt/nb /mnt/nl
GIB=1073741824

# The sectors of the kernel's AEAD errors since kmsg_start, one per line.
aead_sectors() {
    kmsg_errors | sed -n 's/.*INTEGRITY AEAD ERROR, sector \([0-9]*\).*/\1/p'
}

kmsg_start
scratchcrypt /dev/vdc ctl /mnt/ctl none >/run/ctl.out 2>&1 ||
    fail "control: the growth with everything zeroed failed: $(cat /run/ctl.out)"
grown=$(sed -n 's/^grown to \([0-9]*\) bytes in \([0-9]*\) steps$/\1/p' /run/ctl.out)
[ -n "$grown" ] || fail "control: no 'grown to' line: $(cat /run/ctl.out)"
[ "$grown" -ge $((9 * GIB)) ] || fail "control: grew to $grown bytes only, not past 9 GiB"
umount /mnt/ctl || fail "control: umount failed"
desc=$(dumpe2fs /dev/mapper/ctl 2>/dev/null | grep -c 'Primary superblock at 0, Group descriptors at 1-2')
[ "$desc" -eq 1 ] || fail "control: group 0 does not have two descriptor blocks after the growth"
e2fsck -fn /dev/mapper/ctl >/run/ctl.fsck 2>&1 || { cat /run/ctl.fsck; fail "control: e2fsck after the growth"; }
n=$(kmsg_errors | wc -l)
[ "$n" -eq 0 ] || { kmsg_errors | head; fail "control: $n kernel errors with everything zeroed"; }
echo "NEGATIVE|none|$(cat /run/ctl.out)|2 descriptor blocks, e2fsck clean, 0 kernel errors"

for mode in no-bitmaps no-last-block; do
    kmsg_start
    case $mode in no-bitmaps) dev=/dev/vda dir=/mnt/nb ;; *) dev=/dev/vdb dir=/mnt/nl ;; esac
    scratchcrypt $dev ${mode%%-*}${mode##*-} $dir $mode >/run/$mode.out 2>&1
    rc=$?
    n=$(kmsg_errors | wc -l)
    first=$(aead_sectors | head -n 1)
    echo "NEGATIVE|$mode|exit $rc: $(cat /run/$mode.out)|$n kernel errors, first AEAD sector ${first:-none}: $(kmsg_errors | head -n 2 | tr '\n' ' ')"
    [ "$rc" -eq 1 ] && grep -q '^growth failed: ' /run/$mode.out ||
        fail "$mode: expected the growth to fail (exit 1, 'growth failed'), got exit $rc: $(cat /run/$mode.out)"
    [ -n "$first" ] || fail "$mode: the kernel read no unwritten block: the control caught nothing"
    case $mode in
    no-bitmaps)
        [ "$first" -ge 1048576 ] && [ "$first" -lt $((1048576 + 64 * 8)) ] ||
            fail "$mode: first AEAD sector $first is not in the first chunk's bitmaps (1048576..1049088)"
        ;;
    no-last-block)
        [ "$first" -eq 4194296 ] || fail "$mode: first AEAD sector $first is not the step's last block 4194296"
        grep -q 'No space left on device' /run/$mode.out ||
            fail "$mode: the resize did not fail with ENOSPC: $(cat /run/$mode.out)"
        ;;
    esac
    umount -l $dir 2>/dev/null
done
pass
