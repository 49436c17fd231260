# Scenario 4 (negative control): the original's recipe (LUKS2 + dm-integrity formatted without wipe,
# opened without journal, default mkfs.ext4 on a sparse tmpfs file, only its data extents copied onto
# the mapping) must make the stress fail with kernel integrity errors. Passes only if it does.
. /guest/lib.sh
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
if stress_run /dev/mapper/neg /mnt; then
    cryptsetup close neg
    fail "the stress passed on the original's recipe: it cannot detect the defect"
fi
log "stress failed as expected: $STRESS_REASON"
integrity=$(dmesg | grep -cE 'AEAD ERROR|unable to read|I/O error')
umount /mnt 2>/dev/null
cryptsetup close neg || fail "cryptsetup close failed"
require_no_mapping
[ "$integrity" -gt 0 ] || fail "the stress failed ($STRESS_REASON) but without kernel integrity errors"
log "detected: $integrity kernel integrity/I-O error lines"
pass
