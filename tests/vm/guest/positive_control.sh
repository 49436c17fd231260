# Positive control: the same stress on a correct disk (LUKS2 + dm-integrity fully wiped by cryptsetup,
# so every block was written through the mapping; mkfs.ext4 run on the mapping) must pass with a clean
# kernel log. Shows that the stress does not raise false alarms. Kept small: the wipe runs at ~15 MB/s.
. /guest/lib.sh
kmsg_start
log "positive control: luksFormat with full wipe"
oracle_format /dev/vda || fail "cryptsetup luksFormat failed"
oracle_open /dev/vda pos --integrity-no-journal || fail "cryptsetup open failed"
mkfs.ext4 -q -b 4096 /dev/mapper/pos || fail "mkfs.ext4 on the mapping failed"
log "formatted; stress starts"
stress_run /dev/mapper/pos /mnt || { cryptsetup close pos; fail "stress on a correct disk: $STRESS_REASON"; }
cryptsetup close pos || fail "cryptsetup close failed"
require_no_mapping
kmsg_require_clean "wipe, mkfs, stress, e2fsck, remount"
pass
