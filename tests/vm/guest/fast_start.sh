# Fast start: `encrypt --fast-start` returns with a small ext4 mounted and grows it online in a
# detached process. Checked here: the grower can be killed and `grow` resumes it; writers run
# while the file system grows; the grown file system reaches the full size and survives the
# usual stress (waves, drop_caches, e2fsck, remount); `cleanup` stops a running grower. The
# kernel log must stay clean from the first byte written to the end.
. /guest/lib.sh
json_num() { # KEY JSON
    echo "$2" | sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" | head -n 1
}
kmsg_start
log "scratchcrypt encrypt /dev/vda --name fs --mount /mnt --fast-start"
mkdir -p /mnt
mapper=$(scratchcrypt encrypt /dev/vda --name fs --mount /mnt --fast-start) ||
    fail "scratchcrypt encrypt --fast-start failed (status $?)"
[ -b "$mapper" ] || fail "encrypt printed '$mapper', which is not a block device"
st=$(scratchcrypt status fs --json) || fail "status failed (status $?)"
fs=$(json_num fs_bytes "$st")
target=$(json_num target_bytes "$st")
log "right after encrypt: fs_bytes=$fs target_bytes=$target"
[ -n "$fs" ] && [ -n "$target" ] || fail "status --json lacks fs_bytes/target_bytes: $st"
[ "$target" -gt $((3 << 30)) ] || fail "target_bytes $target is not the disk's size"
[ "$fs" -lt "$target" ] || fail "the file system already had its full size when encrypt returned"
echo "$st" | grep -q '"growing": true' || fail "no grower reported right after encrypt: $st"

# Kill the grower at once: the file system must stay consistent, and `grow` must resume.
pid=$(sed -n 's/.*"grower_pid":\([0-9]*\).*/\1/p' /run/scratchcrypt/fs.json)
[ -n "$pid" ] || fail "no grower pid recorded: $(cat /run/scratchcrypt/fs.json)"
kill -9 "$pid" 2>/dev/null
# SIGKILL takes effect when the resize call in flight returns (the kernel finishes that step).
n=0
while st=$(scratchcrypt status fs --json) && echo "$st" | grep -q '"growing": true'; do
    n=$((n + 1))
    [ $n -le 120 ] || fail "a killed grower is still reported after 60 s: $st"
    sleep 0.5
done
echo "$st" | grep -q '"growing": false' || fail "status after kill failed: $st"
log "after killing the grower: fs_bytes=$(json_num fs_bytes "$st")"

# Writers while `grow` resumes the growth in the background.
STRESS_DIRS=25
stress_wave /mnt g 40 >/run/writers.out 2>&1 &
writers=$!
scratchcrypt grow fs || fail "grow failed (status $?)"
wait "$writers" || { cat /run/writers.out; fail "writers failed while the file system grew"; }
st=$(scratchcrypt status fs --json) || fail "status after grow failed"
fs=$(json_num fs_bytes "$st")
[ "$fs" = "$target" ] || fail "after grow: fs_bytes $fs, target $target"
echo "$st" | grep -q '"growing": false' || fail "still growing after grow returned: $st"
scratchcrypt grow fs || fail "a second grow is not a no-op (status $?)"
drop_caches
stress_verify /mnt g 40 || fail "files written during the growth are wrong"
log "grown to $fs bytes; files written during growth verified"
umount /mnt || fail "umount after growth failed"
kmsg_require_clean "encrypt --fast-start, kill, grow with writers"

stress_run "$mapper" /mnt || { scratchcrypt cleanup fs; fail "stress after growth: $STRESS_REASON"; }
scratchcrypt cleanup fs || fail "cleanup failed (status $?)"
require_no_mapping

# `cleanup` right after a fast start stops the grower before it unmounts and removes.
mapper=$(scratchcrypt encrypt /dev/vda --name fs2 --mount /mnt --fast-start) ||
    fail "second encrypt --fast-start failed (status $?)"
scratchcrypt status fs2 --json | grep -q '"growing": true' || fail "fs2 is not growing"
scratchcrypt cleanup fs2 --unmount || fail "cleanup --unmount of a growing mapping failed (status $?)"
require_no_mapping
grep -q " /mnt " /proc/mounts && fail "/mnt is still mounted after cleanup"
[ -e /run/scratchcrypt/fs2.json ] && fail "the growth record survived cleanup"
kmsg_require_clean "fast start, growth, stress, cleanup of a growing mapping"
pass
