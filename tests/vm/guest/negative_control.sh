# Scenario 4 (negative control): the original's recipe (LUKS2 + dm-integrity formatted without wipe,
# opened without journal, default mkfs.ext4 on a sparse tmpfs file, only its data extents copied onto
# the mapping) must make the stress fail, and for the right reason: kernel integrity errors
#   - from the phases after the first mount that are ext4 itself at work (writing, reading back,
#     remounting), not only from e2fsck, whose read-ahead alone could produce them, and
#   - from the journal replay after the simulated crash (the original left the journal as holes).
# Passes only if all of that happens. The kernel must still not oops, BUG or WARN (lib.sh: pass).
. /guest/lib.sh
KMSG_EXPECT_ERRORS=1
kmsg_start
log "negative control: original recipe"
oracle_format /dev/vda --integrity-no-wipe || fail "cryptsetup luksFormat failed"
oracle_open /dev/vda neg --integrity-no-journal || fail "cryptsetup open failed"
size=$(blockdev --getsize64 /dev/mapper/neg) || fail "cannot read the mapping size"
truncate -s "$size" /tmp/image || fail "truncate of the tmpfs image failed"
mkfs.ext4 -q /tmp/image || fail "mkfs.ext4 of the image failed"
log "image made ($size bytes, $(du -k /tmp/image | cut -f1) KiB data); copying data extents"
copy_data_extents /tmp/image /dev/mapper/neg || fail "extent copy failed"
rm -f /tmp/image
prep=$(kmsg_errors | wc -l)
if stress_run /dev/mapper/neg /mnt; then
    cryptsetup close neg
    fail "the stress passed on the original's recipe: it cannot detect the defect"
fi
log "stress failed as expected: $STRESS_REASON"
ext4_phases=$(kmsg_errors_in mount wave1 verify1 wave2 big remount)
replay=$(kmsg_errors_in crash recovery)
fsck=$(kmsg_errors_in e2fsck e2fsck2)
umount /mnt 2>/dev/null
cryptsetup close neg || fail "cryptsetup close failed"
require_no_mapping
log "kernel error lines: preparing $prep, ext4 phases $ext4_phases, crash+replay $replay, e2fsck $fsck"
[ "$ext4_phases" -gt 0 ] ||
    fail "the stress failed ($STRESS_REASON) but ext4 itself logged no integrity error (only e2fsck: $fsck)"
[ "$replay" -gt 0 ] || fail "the journal replay after the crash read no never-written block"
log "detected: $ext4_phases ext4-phase and $replay replay kernel error lines"
pass
