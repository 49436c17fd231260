# Guest script of scripts/vm-bench-journal.sh: the ext4 journal's size against a metadata-heavy
# workload on the scratch disk's own stack (LUKS2, dm-crypt over dm-integrity).
# Every round runs every journal size of /guest/bench_journal.conf (JOURNALS, in MiB; 0 = no
# journal) in turn, interleaved, each on its own disk: `scratchcrypt encrypt --no-journal`, then
# `tune2fs -J size=N` adds a journal of N MiB (tune2fs writes every journal block through the
# mapping, so nothing unwritten is read), mount, `fsync_storm` (WRITERS processes creating FILES
# small files of SIZE bytes each, every one written and fsynced), umount, `e2fsck -fn`, cleanup.
# Prints one `JOURNAL round=R mib=N files=F seconds=S files_per_second=X written=B` line per run.
. /guest/lib.sh
. /guest/bench_journal.conf
written_sectors() { awk '{print $7}' "/sys/block/$1/stat"; }
kmsg_start
mkdir -p /mnt
round=1
while [ "$round" -le "$ROUNDS" ]; do
    i=0
    for mib in $JOURNALS; do
        disk=$(printf "\\$(printf '%03o' $((97 + i)))")
        dev=/dev/vd$disk
        i=$((i + 1))
        name=jb$i
        scratchcrypt encrypt "$dev" --name "$name" --no-journal >/dev/null 2>&1 || fail "encrypt $dev"
        if [ "$mib" != 0 ]; then
            /guest/tune2fs -J size="$mib" /dev/mapper/$name >/dev/null || fail "tune2fs -J size=$mib"
        fi
        mount -t ext4 /dev/mapper/$name /mnt || fail "mount $name"
        before=$(written_sectors vd$disk)
        out=$(/guest/fsync_storm /mnt "$WRITERS" "$FILES" "$SIZE") || fail "fsync_storm on a $mib MiB journal: $out"
        after=$(written_sectors vd$disk)
        umount /mnt || fail "umount $name"
        # Read-ahead off, as the stress does (lib.sh, docs/DESIGN.md "Read-ahead"): e2fsck reads
        # the device through the page cache, and reading the directory blocks and the journal the
        # workload wrote makes the kernel read ahead into free blocks never written, each an AEAD
        # error that no reader asked for (seen: 2-3 per run with the default read-ahead).
        ra=$(blockdev --getra /dev/mapper/$name)
        blockdev --setra 0 /dev/mapper/$name
        e2fsck -fn /dev/mapper/$name >/dev/null 2>&1 || fail "e2fsck -fn after the $mib MiB run"
        blockdev --setra "$ra" /dev/mapper/$name
        scratchcrypt cleanup "$name" || fail "cleanup $name"
        echo "JOURNAL round=$round mib=$mib ${out#STORM } written=$(((after - before) * 512))"
    done
    round=$((round + 1))
done
require_no_mapping
kmsg_require_clean "journal benchmark"
pass
