# Reliability, part 2: concurrency, a SIGKILL in the middle, and key hygiene.
# Disks: /dev/vda and /dev/vdb, 1 GiB each.
. /guest/lib.sh
. /guest/rel_lib.sh
SC=scratchcrypt
kmsg_start

# --- two runs on two devices at once: both succeed
$SC encrypt /dev/vda --name c1 --json >/run/c1.json 2>/run/c1.err &
p1=$!
$SC encrypt /dev/vdb --name c2 --json >/run/c2.json 2>/run/c2.err &
p2=$!
wait $p1 || fail "concurrent run on vda failed: $(cat /run/c1.err)"
wait $p2 || fail "concurrent run on vdb failed: $(cat /run/c2.err)"
for m in c1 c2; do
    e2fsck -fn /dev/mapper/$m >/dev/null 2>&1 || fail "e2fsck after the concurrent run: $m"
done
echo "MATRIX|two-devices-at-once|encrypt vda & encrypt vdb|0 and 0|both mapped, e2fsck clean|-"

# --- key hygiene: the tables reference the kernel keyring, no key stays in it, and no output
# holds anything key-like (a run of 64+ hex digits, as a hex key or any part of one would be)
dmsetup table --showkeys c1 >/run/table || fail "dmsetup table failed"
grep -q ':96:logon:cryptsetup:' /run/table || fail "the crypt table does not reference a keyring key: $(cat /run/table)"
if grep -qE '[0-9a-fA-F]{64}' /run/table /run/c1.json /run/c2.json /run/c1.err /run/c2.err; then
    fail "hex key material in a table or an output"
fi
# After the runs exited, only keyrings that outlive a process (user, session) can still hold a
# key: checked here; the thread keyring is checked below while the process lives.
if grep -q 'cryptsetup:' /proc/keys; then
    fail "a volume key outlived its run in the kernel keyring: $(grep cryptsetup: /proc/keys)"
fi
$SC cleanup c1 && $SC cleanup c2 || fail "cleanup after the concurrent runs failed"
require_no_mapping

# --- the keyring while encrypt lives (issue 23 item 6: a check after exit proves nothing, the
# thread keyring dies with the thread). Positive control first: a live logon key in another
# process's thread keyring must be visible in /proc/keys, or the check below could not fail.
/guest/keyring_probe cryptsetup:probe-control >/run/probe.out 2>/run/probe.err &
pp=$!
i=0
while ! grep -q ADDED /run/probe.out && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
grep -q ADDED /run/probe.out || fail "keyring_probe added no key: $(cat /run/probe.err)"
[ -n "$(grep 'cryptsetup:probe-control' /proc/keys | awk '$2 !~ /i/')" ] ||
    fail "positive control: a live thread-keyring key is not listed in /proc/keys: $(cat /proc/keys)"
kill $pp
wait $pp
# (Its key may stay listed a while: the kernel collects a dead thread's keyring lazily.)
# Now encrypt, stopped (SIGSTOP) once its mapping exists, i.e. after the crypt table was loaded.
$SC encrypt /dev/vda --name live >/run/live.out 2>/run/live.err &
lp=$!
i=0
while [ ! -e /dev/mapper/live ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
[ -e /dev/mapper/live ] || fail "the live run never activated: $(cat /run/live.err)"
kill -STOP $lp
[ -d /proc/$lp ] || fail "the live run ended before it could be observed"
# A live key: listed without the `i` (invalidated) flag; an invalidated key waiting for the
# kernel's garbage collector can no longer be used by any table load.
keys=$(grep 'cryptsetup:' /proc/keys | awk '$2 !~ /i/')
kill -CONT $lp
wait $lp || fail "the observed run failed: $(cat /run/live.err)"
[ -z "$keys" ] || fail "a volume key is in the kernel keyring while encrypt lives: $keys"
$SC cleanup live || fail "cleanup live failed"
require_no_mapping
echo "MATRIX|key-hygiene|dmsetup table --showkeys; /proc/keys while encrypt lives (SIGSTOP after activation; positive control: a live logon key of keyring_probe is listed); JSON and stderr|-|keyring reference only, no key in the keyring while the process lives, none after, no hex key in any output|-"

# --- two runs on the same device: exactly one succeeds, the other fails cleanly as busy
$SC encrypt /dev/vda --name s1 >/run/s1.out 2>/run/s1.err &
p1=$!
$SC encrypt /dev/vda --name s2 >/run/s2.out 2>/run/s2.err &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
echo "MATRIX|same-device-twice|encrypt vda --name s1 & encrypt vda --name s2|$r1 and $r2|$(cat /run/s1.err /run/s2.err | head -1)|-"
case "$r1,$r2" in
0,4) winner=s1 loser=s2 ;;
4,0) winner=s2 loser=s1 ;;
*) fail "same device twice: exits $r1 and $r2, expected one 0 and one 4: $(cat /run/s1.err /run/s2.err)" ;;
esac
dmsetup info $loser >/dev/null 2>&1 && fail "the losing run left its mapping $loser"
e2fsck -fn /dev/mapper/$winner >/dev/null 2>&1 || fail "e2fsck of the winning run's mapping"
$SC cleanup $winner || fail "cleanup $winner failed"
require_no_mapping

# --- SIGKILL in the middle of zeroing, then cleanup removes the mapping and the temp dir
$SC encrypt /dev/vdb --name killed >/dev/null 2>&1 &
pk=$!
i=0
while [ ! -e /dev/mapper/killed ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -e /dev/mapper/killed ] || fail "the run to be killed never activated"
sleep 0.5
kill -9 $pk
wait $pk 2>/dev/null
dmsetup info killed >/dev/null 2>&1 || fail "nothing left after the kill: it finished too early to test"
ls -d /tmp/scratchcrypt-* >/dev/null 2>&1 || fail "no temp dir left after the kill"
$SC cleanup killed --json >/run/cleanup.json || fail "cleanup after SIGKILL failed"
cat /run/cleanup.json
grep -q '"stale_temp_dirs_removed": \[$' /run/cleanup.json && grep -q 'scratchcrypt-' /run/cleanup.json ||
    fail "cleanup did not report the killed run's temp dir"
echo "MATRIX|sigkill-then-cleanup|kill -9 during zeroing; scratchcrypt cleanup killed|0|both layers and the temp dir removed|-"
no_leftovers "after the kill"
require_no_mapping
# The device is usable again.
$SC encrypt /dev/vdb --name again >/dev/null || fail "encrypt after the kill failed"
$SC cleanup again || fail "cleanup again failed"

# --- SIGTERM, SIGINT, SIGHUP in the middle (issue 14): the run stops at the next safe point,
# rolls everything back itself, exits 128+signal with one line naming the step; a second signal
# does not interrupt the rollback; a new run right after works without a manual cleanup.
for sig in TERM INT HUP; do
    case $sig in TERM) num=15 ;; INT) num=2 ;; HUP) num=1 ;; esac
    $SC encrypt /dev/vdb --name sig$num >/dev/null 2>/run/sig.err &
    ps=$!
    i=0
    while [ ! -e /dev/mapper/sig$num ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    [ -e /dev/mapper/sig$num ] || fail "SIG$sig: the run never activated"
    sleep 0.3
    kill -$sig $ps
    [ $sig = TERM ] && { sleep 0.05; kill -TERM $ps 2>/dev/null; } # a second one, mid-rollback
    wait $ps
    rc=$?
    msg=$(cat /run/sig.err)
    echo "MATRIX|sig$(echo $sig | tr A-Z a-z)-mid-run|kill -$sig during encrypt|$rc|$msg|-"
    [ $rc = $((128 + num)) ] || fail "SIG$sig: exit $rc, expected $((128 + num)): $msg"
    echo "$msg" | grep -q "interrupted by SIG$sig" || fail "SIG$sig: message lacks the signal: $msg"
    [ "$(wc -l </run/sig.err)" -le 1 ] || fail "SIG$sig: more than one line on stderr: $msg"
    no_leftovers "after SIG$sig"
    require_no_mapping
done
$SC encrypt /dev/vdb --name after-signals >/dev/null || fail "encrypt after the signals failed"
$SC cleanup after-signals || fail "cleanup after-signals failed"
# A signal while the private tmpfs holds the image: --temp-dir unset and /tmp on ramfs-like
# fallbacks are exercised by rel_matrix; here the default /tmp is used.
kmsg_require_clean "concurrency, kill, signals, cleanup"
pass
