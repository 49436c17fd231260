# Control of the kernel-log check itself: `pass` must turn into a FAIL for every kind of bad line
# (an oops, a BUG, a WARNING, a call trace, a hung task; an integrity or I/O error unless the
# scenario expects them), and stay a PASS on a clean log. Each attempt runs `pass` in a subshell
# whose output is kept, so only the final verdict reaches the console.
. /guest/lib.sh
try_pass() { # LOG_FILE -> prints PASS or FAIL
    rm -f /run/verdict
    out=$(KMSG_ALL=$1 sh -c ". /guest/lib.sh kmsg-try; pass" 2>&1)
    case $out in
    *"SCRATCHCRYPT-VM: FAIL "*) echo FAIL ;;
    *"SCRATCHCRYPT-VM: PASS "*) echo PASS ;;
    *) echo "NONE: $out" ;;
    esac
}
dmesg -c >/dev/null
echo "6,1,1,-;EXT4-fs (vda): mounted filesystem" >/run/clean.log
[ "$(try_pass /run/clean.log)" = PASS ] || fail "pass fails on a clean log"
for line in \
    "BUG: kernel NULL pointer dereference, address: 0000000000000000" \
    "Oops: 0000 [#1] PREEMPT SMP NOPTI" \
    "WARNING: CPU: 1 PID: 77 at fs/ext4/inode.c:1234 ext4_foo+0x1/0x2" \
    "Call Trace:" \
    "INFO: task kworker/u4:2:55 blocked for more than 120 seconds." \
    "Kernel panic - not syncing: Fatal exception" \
    "JBD2: Invalid checksum recovering data block 1234 in log"; do
    { cat /run/clean.log; echo "4,2,2,-;$line"; } >/run/bad.log
    [ "$(try_pass /run/bad.log)" = FAIL ] || fail "pass accepted the kernel line '$line'"
done
log "every fatal pattern fails the verdict"
for line in "device-mapper: crypt: dm-1: INTEGRITY AEAD ERROR, sector 8" \
    "I/O error, dev dm-1, sector 8 op 0x0:(READ)" \
    "EXT4-fs error (device dm-1): ext4_get_inode_loc:4567: unable to read itable block"; do
    dmesg -c >/dev/null
    echo "$line" >/dev/kmsg
    [ "$(try_pass /run/clean.log)" = FAIL ] || fail "pass accepted the kernel line '$line'"
    r=$(KMSG_EXPECT_ERRORS=1 try_pass /run/clean.log)
    [ "$r" = PASS ] || fail "KMSG_EXPECT_ERRORS=1 did not allow '$line': $r"
done
dmesg -c >/dev/null
log "every integrity pattern fails the verdict unless expected"
rm -f /run/verdict
pass
