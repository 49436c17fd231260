# Guest script: `scratchcrypt encrypt --json` on a fresh disk. The integrity journal laid out at
# format is one section (journal_sections 1 in the kernel's superblock, journal_sectors:264 in
# the table the kernel reports), and the report's `written` categories add up, within 2 %, to
# the sectors /sys/block/<dev>/stat says the device saw written; the owners of the zeroed bytes
# (superblocks and descriptors, descriptor reserves, bitmaps, inode tables, journal, probe
# blocks, read-ahead margins) add up to `zeroed` exactly. Then the file system mounts,
# takes files, passes `e2fsck -fn`, and the kernel logs no integrity error.
# Needs: scratchcrypt (the CLI), dmsetup, e2fsck; the test disk as /dev/vda.
. /guest/lib.sh
DEV=${DEV:-/dev/vda}
disk=${DEV#/dev/}
written_sectors() { awk '{print $7}' "/sys/block/$disk/stat"; }
# The value of the integer field "KEY": N in the pretty-printed JSON report.
json_num() { awk -v k="\"$1\":" '$1 == k {gsub(",", "", $2); print $2; exit}' /run/report.json; }

kmsg_start
before=$(written_sectors)
scratchcrypt encrypt "$DEV" --name bytes --json >/run/report.json || fail "encrypt exited $?"
after=$(written_sectors)
cat /run/report.json
seen=$(((after - before) * 512))
sum=0
for k in luks_header_area integrity_metadata zeroed ext4_metadata integrity_tags; do
    v=$(json_num "$k")
    [ -n "$v" ] || fail "report has no written.$k"
    log "written.$k = $v"
    sum=$((sum + v))
done
log "categories sum to $sum bytes, /sys/block/$disk/stat saw $seen bytes written"
echo "BYTES disk=$disk seen=$seen reported=$sum"
diff=$((sum > seen ? sum - seen : seen - sum))
[ $((diff * 100)) -le $((seen * 2)) ] ||
    fail "report says $sum bytes, the device saw $seen ($diff apart, more than 2 %)"

# Every zeroed byte has a named owner (issue 27): the parts of `zeroed` add up to it exactly.
owners=0
line="BYTES-OWNERS"
for k in superblocks_and_descriptors descriptor_reserves bitmaps inode_tables journal probe_blocks read_ahead_margins; do
    v=$(json_num "$k")
    [ -n "$v" ] || fail "report has no written owner $k"
    owners=$((owners + v))
    line="$line $k=$v"
done
echo "$line ext4_metadata=$(json_num ext4_metadata) integrity_tags=$(json_num integrity_tags) luks_header_area=$(json_num luks_header_area) integrity_metadata=$(json_num integrity_metadata)"
[ "$owners" = "$(json_num zeroed)" ] || fail "the owners of the zeroed bytes add up to $owners, not $(json_num zeroed)"

# The kernel's own layout: superblock at the data offset, journal_sections at byte 12 (le32),
# provided_data_sectors at byte 16 (le64; small enough here for the low word).
off=$(cryptsetup luksDump "$DEV" | awk '/^Data segments:/ {d=1} d && /offset:/ {print $2; exit}')
[ -n "$off" ] || fail "no data offset in luksDump"
sb_u32() { dd if="$DEV" bs=1 skip=$((off + $1)) count=4 2>/dev/null | od -A n -t u4 | tr -d ' '; }
sections=$(sb_u32 12)
provided=$(sb_u32 16)
log "integrity superblock at $off: journal_sections=$sections provided_data_sectors=$provided"
echo "BYTES journal_sections=$sections provided_data_sectors=$provided"
[ "$sections" = 1 ] || fail "journal_sections is $sections, expected 1"
meta=$(json_num integrity_metadata)
[ "$meta" -le 1048576 ] || fail "integrity metadata written at format is $meta bytes (> 1 MiB)"
table=$(dmsetup table bytes_dif)
log "bytes_dif: $table"
case $table in
"0 $provided integrity "*" D "*"journal_sectors:264 "*) ;;
*) fail "integrity table is not mode D over $provided sectors with journal_sectors:264: $table" ;;
esac

mkdir -p /mnt
mount -t ext4 /dev/mapper/bytes /mnt || fail "mount"
i=0
while [ $i -lt 20 ]; do echo "file $i" >/mnt/f$i || fail "write /mnt/f$i"; i=$((i + 1)); done
umount /mnt || fail "umount"
e2fsck -fn /dev/mapper/bytes || fail "e2fsck -fn"
scratchcrypt cleanup bytes || fail "cleanup"
require_no_mapping
kmsg_require_clean "encrypt, mount, files, e2fsck, cleanup"
pass
