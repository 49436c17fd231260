# Reliability, part 3 (issue 14, item 7): load. Four disks encrypted, mounted, written and cleaned
# up in parallel, ten rounds, one fast start with its grower among them in every round; after
# every round nothing may be left: no dm device, no key in /proc/keys, no temp dir, no mount, no
# growth record, no grower; the grower holds only its lock and the standard descriptors.
# Disks: /dev/vda../dev/vdd, 256 MiB each.
. /guest/lib.sh
. /guest/rel_lib.sh
SC=scratchcrypt
kmsg_start
ROUNDS=10
disks="vda vdb vdc vdd"
round=1
while [ $round -le $ROUNDS ]; do
    pids=""
    for d in $disks; do
        mkdir -p /mnt/$d
        extra=""
        [ $d = vdd ] && extra="--fast-start --initial-size 128M"
        (
            $SC encrypt /dev/$d --name l$d --mount /mnt/$d $extra >/run/$d.out 2>/run/$d.err || exit 1
            gdd if=/dev/urandom of=/mnt/$d/data bs=1M count=8 conv=fsync status=none || exit 2
            exit 0
        ) &
        pids="$pids $!"
    done
    n=0
    for p in $pids; do
        n=$((n + 1))
        wait $p || {
            rc=$?
            # A run once failed in CI with ENOMEM from the kernel (a dm table load): show why.
            dmesg | tail -n 60
            head -n 8 /proc/meminfo
            cat /proc/buddyinfo
            fail "round $round: run $n failed ($rc): $(cat /run/*.err)"
        }
    done
    # The fast start's grower: a detached process of ours with almost nothing open.
    gpid=$(sed -n 's/.*"grower_pid": *\([0-9]*\).*/\1/p' /run/scratchcrypt/lvdd.json 2>/dev/null)
    if [ -n "$gpid" ] && [ -d /proc/$gpid ]; then
        # One listing, counted and shown (two reads raced with the grower's exit).
        fdl=$(ls -l /proc/$gpid/fd 2>/dev/null)
        fds=$(echo "$fdl" | grep -c -- '->')
        [ "$fds" -le 6 ] || fail "round $round: the grower $gpid holds $fds descriptors: $(echo "$fdl" | tr '\n' ';')"
    fi
    pids=""
    for d in $disks; do
        $SC cleanup l$d --unmount >/dev/null 2>/run/$d.cerr &
        pids="$pids $!"
    done
    for p in $pids; do wait $p || fail "round $round: a cleanup failed: $(cat /run/*.cerr)"; done
    # Nothing of ours is left.
    no_leftovers "round $round"
    require_no_mapping
    # The runs have exited: this sees only keyrings that outlive a process (user, session);
    # the thread keyring while a run lives is checked in rel_concurrency.sh.
    ! grep -q cryptsetup /proc/keys || fail "round $round: keys outlived their runs: $(grep cryptsetup /proc/keys)"
    ! grep -q /dev/mapper /proc/mounts || fail "round $round: mounts left: $(grep /dev/mapper /proc/mounts)"
    # The state directory stays (root's, 0700), with the dm-integrity lock file in it; no
    # growth record or grower's lock of a removed mapping may.
    left=$(ls /run/scratchcrypt | grep -v '^kernel-dm-integrity-serialise$')
    [ -z "$left" ] || fail "round $round: growth records left: $left"
    [ "$(stat -c '%a %u' /run/scratchcrypt)" = "700 0" ] ||
        fail "round $round: /run/scratchcrypt is $(stat -c '%a %u' /run/scratchcrypt), not 700 0"
    [ -z "$gpid" ] || [ ! -d /proc/$gpid ] || [ "$(cat /proc/$gpid/stat | cut -d' ' -f3)" = Z ] ||
        fail "round $round: the grower $gpid outlived cleanup"
    log "round $round: clean"
    round=$((round + 1))
done
echo "MATRIX|load|4 disks in parallel (one fast start), encrypt+mount+write+cleanup, $ROUNDS rounds|0|no mapping, key, temp dir, mount, record or grower left after any round|-"
kmsg_require_clean "load"
pass
