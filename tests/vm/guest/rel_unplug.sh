# Reliability, part 4 (issue 14, item 6): the disk goes away. /dev/vdb (qemu device disk1) is
# removed by the host (QMP device_del, tests/vm/run.sh --hotplug) while `encrypt` writes to it:
# the run must fail with an I/O error within two minutes (never hang), and `cleanup` afterwards
# must leave no mapping and no temp dir. Then /dev/vda still encrypts fine.
# Disks: /dev/vda and /dev/vdb, 2 GiB each.
. /guest/lib.sh
. /guest/rel_lib.sh
KMSG_EXPECT_ERRORS=1 # the removed disk's I/O errors are the point; `pass` still checks the fatal ones
SC=scratchcrypt
kmsg_start
$SC encrypt /dev/vdb --name gone >/run/out 2>/run/err &
pid=$!
i=0
while [ ! -e /dev/mapper/gone ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
[ -e /dev/mapper/gone ] || fail "the run never activated: $(cat /run/err)"
sleep 0.5
kill -0 $pid 2>/dev/null || fail "the run finished before the disk could be removed"
echo "SCRATCHCRYPT-VM: UNPLUG disk1"
t0=$(cut -d' ' -f1 /proc/uptime)
i=0
while kill -0 $pid 2>/dev/null; do
    sleep 0.5
    i=$((i + 1))
    [ $i -lt 240 ] || fail "encrypt still runs 120 s after its disk was removed: $(cat /run/err)"
done
wait $pid
rc=$?
secs=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {printf "%.1f", b - a}')
msg=$(cat /run/err)
echo "MATRIX|disk-removed|device_del of the source during encrypt|$rc|$msg|-"
log "encrypt ended ${secs}s after the removal, exit $rc"
[ -b /dev/vdb ] && fail "/dev/vdb is still there: the unplug did not happen"
# docs/RELIABILITY.md says exit 6 (I/O): anything else (0, a refusal, a failed rollback = 7)
# is a failure of this row.
[ $rc -eq 6 ] || fail "encrypt exited $rc after its disk was removed, expected 6 (I/O): $msg"
[ "$(wc -l </run/err)" -le 1 ] || fail "more than one line on stderr: $msg"
$SC cleanup gone >/run/cout 2>/run/cerr || fail "cleanup after the removal failed: $(cat /run/cerr)"
echo "MATRIX|cleanup-after-removal|scratchcrypt cleanup gone|0|$(cat /run/cerr)|-"
no_leftovers "after the disk was removed"
require_no_mapping
# The removed disk's errors are over: the normal run on the other disk gets the full kernel-log
# check (KMSG_EXPECT_ERRORS=1 above makes `pass` check only the fatal patterns).
kmsg_start
$SC encrypt /dev/vda --name still >/dev/null 2>/run/err || fail "encrypt of the other disk failed: $(cat /run/err)"
$SC cleanup still || fail "cleanup still failed"
kmsg_require_clean "the normal encrypt of /dev/vda after the removal"
pass
