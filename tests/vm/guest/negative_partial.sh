# Negative control, partial defect: scratchcrypt's own plan with one hole in it. The disk is
# formatted without wipe (cryptsetup oracle), the image built by `scratchcrypt format-image`, and
# every range of its plan zeroed through the mapping EXCEPT the blocks of group 0's inode table, then
# the image's extents copied (`scratchcrypt copy-extents`). ext4 allocating inodes in parallel must
# then read a never-written inode-table block: the stress must fail with kernel integrity errors
# from ext4's own phases. Shows the VM stress notices one forgotten range, not only the original's
# wholesale omission.
. /guest/lib.sh
KMSG_EXPECT_ERRORS=1
kmsg_start
oracle_format /dev/vda --integrity-no-wipe || fail "cryptsetup luksFormat failed"
oracle_open /dev/vda part --integrity-no-journal || fail "cryptsetup open failed"
m=/dev/mapper/part
size=$(blockdev --getsize64 $m) || fail "cannot read the mapping size"
scratchcrypt format-image /tmp/image --size "$size" --json >/run/plan.json || fail "format-image failed"
# "Inode table at 35-546" of group 0, in 4 KiB blocks.
it=$(dumpe2fs /tmp/image 2>/dev/null | awk '/^Group 0:/ {g = 1} g && /Inode table at/ {
    sub(/.*Inode table at /, ""); sub(/ .*/, ""); print; exit }')
it_first=${it%-*} it_last=${it#*-}
[ -n "$it_first" ] && [ -n "$it_last" ] || fail "no inode table of group 0 in dumpe2fs: '$it'"
log "plan minus group 0's inode table (blocks $it_first-$it_last)"
# Zero every plan range (bytes, block-aligned) minus [it_first, it_last], with O_DIRECT writes of
# up to 1 MiB (4 KiB multiples: never a partial block, so never a read-modify-write).
zeroed=0
awk '/"start"/ {gsub(/[^0-9]/, ""); s = $0} /"len"/ {gsub(/[^0-9]/, ""); print s / 4096, $0 / 4096}' \
    /run/plan.json >/run/ranges
while read -r first count; do
    last=$((first + count - 1))
    if [ "$last" -lt "$it_first" ] || [ "$first" -gt "$it_last" ]; then
        pieces="$first:$last"
    else
        pieces=""
        [ "$first" -lt "$it_first" ] && pieces="$first:$((it_first - 1))"
        [ "$last" -gt "$it_last" ] && pieces="$pieces $((it_last + 1)):$last"
    fi
    for p in $pieces; do
        a=${p%:*} b=${p#*:}
        gdd if=/dev/zero of=$m bs=1M seek=$((a * 4096)) count=$(((b - a + 1) * 4096)) \
            iflag=count_bytes oflag=direct,seek_bytes conv=notrunc status=none ||
            fail "zeroing blocks $a-$b failed"
        zeroed=$((zeroed + b - a + 1))
    done
done </run/ranges
[ "$zeroed" -gt 0 ] || fail "nothing zeroed: the plan could not be read"
log "zeroed $zeroed blocks; copying the image's extents"
scratchcrypt copy-extents /tmp/image $m || fail "copy-extents failed"
rm -f /tmp/image
if stress_run $m /mnt; then
    cryptsetup close part
    fail "the stress passed with group 0's inode table never written: it misses a partial defect"
fi
log "stress failed as expected: $STRESS_REASON"
ext4_phases=$(kmsg_errors_in mount wave1 verify1 wave2 big remount crash recovery)
fsck=$(kmsg_errors_in e2fsck e2fsck2)
umount /mnt 2>/dev/null
cryptsetup close part || fail "cryptsetup close failed"
require_no_mapping
log "kernel error lines: ext4 phases $ext4_phases, e2fsck $fsck"
[ "$ext4_phases" -gt 0 ] ||
    fail "the stress failed ($STRESS_REASON) but ext4 itself logged no integrity error (only e2fsck: $fsck)"
log "detected: $ext4_phases ext4-phase kernel error lines"
pass
