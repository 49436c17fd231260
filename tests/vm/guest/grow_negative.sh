# Negative controls of the online growth (issue 13): the `grow_unzeroed` example (installed as
# `scratchcrypt` here) makes a fast start and grows it while skipping part of what scratchcrypt
# zeroes before each resize step. The kernel must hit a never-written block each time — the
# proof that the growth test (fast_start.sh) would see a missing zero range. The control of the
# control, with everything zeroed, must grow cleanly.
# Disks: /dev/vda 2 GiB; /dev/vdb 8 GiB (a growth in several steps: encrypt writes the mapping's
# last block itself, so only an intermediate step's last block is never written); /dev/vdc
# 8 GiB, so that the control grows a filesystem with mke2fs' 1023 reserved GDT blocks, whose
# resize steps need the journal floor (growth::min_journal_blocks): too small, and the first
# step fails with ENOSPC.
. /guest/lib.sh
KMSG_EXPECT_ERRORS=1
mkdir -p /mnt/ctl /mnt/nb /mnt/nl

kmsg_start
scratchcrypt /dev/vdc ctl /mnt/ctl none >/run/ctl.out 2>&1 ||
    fail "control: the growth with everything zeroed failed: $(cat /run/ctl.out)"
n=$(kmsg_errors | wc -l)
[ "$n" -eq 0 ] || { kmsg_errors | head; fail "control: $n kernel errors with everything zeroed"; }
echo "NEGATIVE|none|$(cat /run/ctl.out)|0 kernel errors"
umount /mnt/ctl

for mode in no-bitmaps no-last-block; do
    kmsg_start
    case $mode in no-bitmaps) dev=/dev/vda dir=/mnt/nb ;; *) dev=/dev/vdb dir=/mnt/nl ;; esac
    scratchcrypt $dev ${mode%%-*}${mode##*-} $dir $mode >/run/$mode.out 2>&1
    rc=$?
    n=$(kmsg_errors | wc -l)
    echo "NEGATIVE|$mode|exit $rc: $(cat /run/$mode.out)|$n kernel errors: $(kmsg_errors | head -n 2 | tr '\n' ' ')"
    [ "$n" -gt 0 ] || fail "$mode: the kernel read no unwritten block (exit $rc): the control caught nothing"
    [ "$rc" -ne 0 ] || fail "$mode: the growth reported success over unwritten blocks"
    umount -l $dir 2>/dev/null
done
pass
