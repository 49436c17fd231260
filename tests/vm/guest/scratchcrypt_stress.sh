# Scenario 3: the integrity stress on a disk prepared by `scratchcrypt encrypt`. The kernel log must
# stay clean from the first byte scratchcrypt writes to the end (encrypt step included).
. /guest/lib.sh
kmsg_start
log "scratchcrypt encrypt /dev/vda --name st"
mapper=$(scratchcrypt encrypt /dev/vda --name st) || fail "scratchcrypt encrypt failed (status $?)"
[ -b "$mapper" ] || fail "scratchcrypt encrypt printed '$mapper', which is not a block device"
kmsg_require_clean "scratchcrypt encrypt"
stress_run "$mapper" /mnt || { scratchcrypt cleanup st; fail "stress: $STRESS_REASON"; }
scratchcrypt cleanup st || fail "scratchcrypt cleanup failed (status $?)"
require_no_mapping
kmsg_require_clean "encrypt, stress, e2fsck, remount, cleanup"
pass
