# Shared guest helpers: verdicts, kernel-log check, the parallel ext4 stress, the LUKS2 oracle format.
# Sourced by the scenario scripts (busybox sh). Scenario scripts must end with `pass` or `fail`.

SCENARIO=${1:-unknown}

# Kernel log lines that mean the kernel itself went wrong: an oops, a BUG, a WARNING, a call trace,
# a hung task, a panic. Checked over the whole boot (/run/kmsg.all, captured by /init from
# /dev/kmsg, so `dmesg -c` cannot hide them) by `pass` and again by /init after the scenario: no
# scenario can pass with one of these, whatever it expects otherwise. `JBD2: Invalid checksum` is
# here too: a journal block that reads back without an I/O error but with the wrong checksum is
# corrupt data, which no scenario provokes (the negative controls make reads fail, not lie).
KMSG_FATAL='BUG:|Oops|WARNING:|Call Trace|blocked for more than|hung_task|Kernel panic|general protection fault|kernel BUG|JBD2: Invalid checksum'
# Kernel log lines that mean a block was read that was never written through the mapping (or worse).
# Not `Aborting journal`: the stress's simulated crash (EXT4_IOC_SHUTDOWN, stress_crash) logs
# exactly that line on purpose, and every abort that is not deliberate follows an I/O, EXT4-fs or
# JBD2 error line, which this list catches.
KMSG_BAD="AEAD ERROR|I/O error|EXT4-fs error|unable to read|JBD2: .*(failed|error)|$KMSG_FATAL"
# A scenario that provokes integrity or I/O errors on purpose (the negative control, the benchmark's
# original recipe) sets KMSG_EXPECT_ERRORS=1 and checks them itself; `pass` then checks KMSG_FATAL
# only. Everyone else gets the full KMSG_BAD check at `pass`, since the last kmsg_start (or boot).
KMSG_EXPECT_ERRORS=${KMSG_EXPECT_ERRORS:-0}

log() {
    echo "[$(cut -d' ' -f1 /proc/uptime)] $*"
}

pass() {
    sleep 0.2 # let /init's /dev/kmsg reader catch up
    fatal=$(kmsg_fatal | wc -l)
    if [ "$fatal" -ne 0 ]; then
        kmsg_fatal_context
        fail "$fatal kernel log lines match '$KMSG_FATAL' (oops, BUG, WARNING, call trace, hung task)"
    fi
    if [ "$KMSG_EXPECT_ERRORS" != 1 ]; then
        bad=$(kmsg_errors | wc -l)
        if [ "$bad" -ne 0 ]; then
            kmsg_errors | head -n 15
            fail "$bad kernel log lines match '$KMSG_BAD' at the verdict"
        fi
    fi
    : >/run/verdict
    echo "SCRATCHCRYPT-VM: PASS $SCENARIO"
    exit 0
}

fail() {
    : >/run/verdict
    echo "SCRATCHCRYPT-VM: FAIL $SCENARIO: $*"
    exit 1
}

# Start watching the kernel log: everything logged after this call is checked by kmsg_errors.
kmsg_start() {
    dmesg -c >/dev/null
    echo "scratchcrypt-vm: kernel log check starts for $SCENARIO" >/dev/kmsg
}

# Print the bad kernel-log lines since kmsg_start (nothing when clean).
kmsg_errors() {
    dmesg | grep -E "$KMSG_BAD"
}

# Print the fatal kernel-log lines of the whole boot (nothing when clean). Falls back to dmesg when
# /init's capture is missing.
kmsg_fatal() {
    if [ -f "${KMSG_ALL:-/run/kmsg.all}" ]; then
        grep -a -E "$KMSG_FATAL" "${KMSG_ALL:-/run/kmsg.all}"
    else
        dmesg | grep -E "$KMSG_FATAL"
    fi
}

# Print the kernel log around the first fatal line: a "Call Trace:" alone says nothing, the
# lines before it name the warning (a failed allocation, a hung task) and the lines after it the
# stack.
kmsg_fatal_context() {
    f="${KMSG_ALL:-/run/kmsg.all}"
    if [ ! -f "$f" ]; then
        kmsg_fatal | head -n 30
        return
    fi
    first=$(grep -a -n -E "$KMSG_FATAL" "$f" | head -n 1 | cut -d: -f1)
    [ -n "$first" ] || return 0
    from=$((first - 15))
    [ "$from" -ge 1 ] || from=1
    sed -n "${from},$((first + 40))p" "$f"
}

# Fail the scenario when the kernel logged any bad line; show the first ones.
kmsg_require_clean() {
    bad=$(kmsg_errors | wc -l)
    if [ "$bad" -ne 0 ]; then
        kmsg_errors | head -n 15
        fail "$bad kernel log lines match '$KMSG_BAD' ($1)"
    fi
    log "kernel log clean ($1)"
}

KEYFILE=/run/oracle.key

# The original's format, through the cryptsetup oracle: LUKS2, aes-xts-plain64 + hmac-sha256,
# 4096-byte sectors, PBKDF2 with 1000 iterations. Extra options (e.g. --integrity-no-wipe) are passed on.
oracle_format() { # DEV [cryptsetup options...]
    dev=$1
    shift
    [ -e "$KEYFILE" ] || head -c 64 /dev/urandom >"$KEYFILE"
    cryptsetup luksFormat --batch-mode --disable-locks --disable-external-tokens --type luks2 \
        --cipher aes-xts-plain64 --key-size 512 --integrity hmac-sha256 \
        --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --sector-size 4096 \
        --key-file "$KEYFILE" "$@" "$dev"
}

oracle_open() { # DEV NAME [cryptsetup options...]
    dev=$1
    nm=$2
    shift 2
    cryptsetup open --type luks2 --disable-locks --disable-external-tokens --key-file "$KEYFILE" \
        "$@" "$dev" "$nm"
}

# Require that no device-mapper mapping is left.
require_no_mapping() {
    left=$(dmsetup ls 2>&1)
    case $left in
    *"No devices found"*) log "no mapping left" ;;
    *) fail "mappings left after cleanup: $left" ;;
    esac
}

# Copy only the data extents of SRC onto DST, skipping holes, the way the original did
# (SEEK_DATA/SEEK_HOLE; scratchcrypt's own copier, which alone does not make a device safe).
copy_data_extents() { scratchcrypt copy-extents "$1" "$2"; }

# --- the parallel ext4 stress -------------------------------------------------------------------

STRESS_WRITERS=4        # parallel writers per wave
STRESS_DIRS=25          # directories per writer (4 x 25 = 100 directories)
STRESS_FILES1=100       # files per directory in wave 1 (100 x 100 = 10,000 files)
STRESS_FILES2=40        # files per directory in wave 2 (4,000 more files in the same directories)
STRESS_BIG_MIB=32       # size of the checksummed big file
STRESS_FILES_CRASH=2    # files per directory written just before the simulated crash (200 files)
STRESS_REASON=""

# Mark the start of a stress phase in the kernel log, so that errors can be counted per phase
# (kmsg_errors_in). Phases: mount wave1 verify1 wave2 big e2fsck remount crash recovery e2fsck2.
stress_phase() { # NAME
    echo "scratchcrypt-vm: phase $1" >/dev/kmsg
    log "stress: phase $1"
}

# Count the kernel-log lines matching KMSG_BAD logged during the given phases (since kmsg_start).
kmsg_errors_in() { # PHASE...
    dmesg | awk -v want=" $* " -v bad="$KMSG_BAD" '
        /scratchcrypt-vm: phase / { phase = $NF; next }
        $0 ~ bad && index(want, " " phase " ") { n++ }
        END { print n + 0 }'
}

# The content of one small file, set in LINE: unique, so a misplaced or stale block is noticed.
# (A variable, not $(...): command substitution forks, which is slow under emulation.)
stress_line() { # WRITER DIR WAVE FILE
    # Short: busybox `read` fetches one byte per system call, so verification cost grows with length.
    LINE="w$1 d$2 $3$4"
}

# One writer of one wave; prints at most 5 failures and exits 1 when anything failed.
stress_writer() { # MNT WRITER WAVE FILES
    mnt=$1 w=$2 wave=$3 files=$4 bad=0 d=0
    while [ $d -lt $STRESS_DIRS ]; do
        dir=$mnt/stress/w$w-d$d
        mkdir -p "$dir" 2>/dev/null || { bad=$((bad + 1)); d=$((d + 1)); continue; }
        f=0
        while [ $f -lt "$files" ]; do
            stress_line "$w" "$d" "$wave" "$f"
            if ! echo "$LINE" 2>/dev/null >"$dir/$wave-$f"; then
                bad=$((bad + 1))
                [ $bad -le 5 ] && echo "stress: writer $w cannot write $dir/$wave-$f"
            fi
            f=$((f + 1))
        done
        d=$((d + 1))
    done
    [ $bad -eq 0 ]
}

# Run `FUNC MNT WRITER WAVE FILES` for every writer in parallel; fails when any writer failed.
# Its variables are local: scripts that source this file keep their own names.
stress_parallel() { # FUNC MNT WAVE FILES
    local pids="" w=0 rc=0 p
    while [ $w -lt $STRESS_WRITERS ]; do
        "$1" "$2" "$w" "$3" "$4" &
        pids="$pids $!"
        w=$((w + 1))
    done
    for p in $pids; do wait "$p" || rc=1; done
    return $rc
}

stress_wave() { stress_parallel stress_writer "$@"; } # MNT WAVE FILES

# Verify every file of one wave (all writers in parallel); prints at most 5 mismatches per writer.
stress_verify_writer() { # MNT WRITER WAVE FILES
    mnt=$1 w=$2 wave=$3 files=$4 bad=0 d=0
    while [ $d -lt $STRESS_DIRS ]; do
        f=0
        while [ $f -lt "$files" ]; do
            stress_line "$w" "$d" "$wave" "$f"
            want=$LINE
            got=""
            read -r got 2>/dev/null <"$mnt/stress/w$w-d$d/$wave-$f"
            if [ "$got" != "$want" ]; then
                bad=$((bad + 1))
                [ $bad -le 5 ] && echo "stress: bad content in w$w-d$d/$wave-$f: '$got'"
            fi
            f=$((f + 1))
        done
        d=$((d + 1))
    done
    [ $bad -eq 0 ]
}

stress_verify() { stress_parallel stress_verify_writer "$@"; } # MNT WAVE FILES

# Fatal when it fails: without it the stress stops reading back from the device.
drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches || fail "drop_caches failed: the stress would not read back from the device"
}

# The whole stress on an ext4 (or, with FSTYPE xfs, an xfs) device: two parallel waves with a
# cache drop between them, a big checksummed file, umount, e2fsck -fn (xfs: xfs_repair -n),
# remount, verify everything, then a crash (a last batch of files, sync, a shutdown without log
# flush via `xfs_io -x -c shutdown`, umount), a mount that replays the journal and verifies the
# batch, umount, the check again, kernel-log check.
# Each phase is marked in the kernel log (stress_phase). Returns 0 when everything held, else 1
# with the first reason in STRESS_REASON; it goes on after a failure wherever it can, so that
# every phase gets its chance to read what was never written.
# The caller must have called kmsg_start before preparing the device.
stress_run() { # DEV MNT [FSTYPE]
    dev=$1 mnt=$2 fstype=${3:-ext4}
    STRESS_REASON=""
    mkdir -p "$mnt"
    stress_phase mount
    # Always an explicit type: nothing may probe the device.
    mount -t "$fstype" "$dev" "$mnt" || { STRESS_REASON="first mount failed"; return 1; }
    stress_phase wave1
    log "stress: wave 1 ($STRESS_WRITERS writers, $((STRESS_WRITERS * STRESS_DIRS)) dirs, $((STRESS_WRITERS * STRESS_DIRS * STRESS_FILES1)) files)"
    stress_wave "$mnt" a $STRESS_FILES1 || STRESS_REASON="wave 1 writes failed"
    drop_caches
    stress_phase verify1
    log "stress: caches dropped, verifying wave 1"
    stress_verify "$mnt" a $STRESS_FILES1 || STRESS_REASON=${STRESS_REASON:-"wave 1 content wrong after drop_caches"}
    stress_phase wave2
    log "stress: wave 2 ($((STRESS_WRITERS * STRESS_DIRS * STRESS_FILES2)) files)"
    stress_wave "$mnt" b $STRESS_FILES2 || STRESS_REASON=${STRESS_REASON:-"wave 2 writes failed"}
    stress_phase big
    log "stress: ${STRESS_BIG_MIB} MiB file"
    if dd if=/dev/urandom of="$mnt/big" bs=1048576 count=$STRESS_BIG_MIB 2>/dev/null; then
        sha256sum "$mnt/big" | cut -d' ' -f1 >/run/big.sha256
    else
        STRESS_REASON=${STRESS_REASON:-"writing the big file failed"}
    fi
    sync
    umount "$mnt" || { STRESS_REASON=${STRESS_REASON:-"umount failed"}; return 1; }
    stress_phase e2fsck
    log "stress: $([ "$fstype" = xfs ] && echo "xfs_repair -n" || echo "e2fsck -fn") (device read-ahead off)"
    # e2fsck reads the raw device through the page cache. Reading the directory blocks that grew
    # during the stress in order makes the kernel read ahead into the free blocks after them,
    # which were never written: each logs an AEAD error although e2fsck never asked for them.
    # ext4 itself never reads there. See docs/DESIGN.md, "Read-ahead".
    ra=$(blockdev --getra "$dev")
    blockdev --setra 0 "$dev"
    if [ "$fstype" = xfs ]; then
        if ! xfs_repair -n "$dev" >/run/e2fsck.out 2>&1; then
            tail -n 15 /run/e2fsck.out
            STRESS_REASON=${STRESS_REASON:-"xfs_repair -n failed"}
        fi
    elif ! e2fsck -fn "$dev" >/run/e2fsck.out 2>&1; then
        tail -n 15 /run/e2fsck.out
        STRESS_REASON=${STRESS_REASON:-"e2fsck -fn found problems"}
    fi
    blockdev --setra "$ra" "$dev"
    stress_phase remount
    mount -t "$fstype" "$dev" "$mnt" || { STRESS_REASON=${STRESS_REASON:-"remount failed"}; return 1; }
    log "stress: verifying every file after remount"
    stress_verify "$mnt" a $STRESS_FILES1 || STRESS_REASON=${STRESS_REASON:-"wave 1 content wrong after remount"}
    stress_verify "$mnt" b $STRESS_FILES2 || STRESS_REASON=${STRESS_REASON:-"wave 2 content wrong after remount"}
    sum=$(sha256sum "$mnt/big" 2>/dev/null | cut -d' ' -f1)
    [ -n "$sum" ] && [ "$sum" = "$(cat /run/big.sha256 2>/dev/null)" ] ||
        STRESS_REASON=${STRESS_REASON:-"big file checksum mismatch after remount"}
    stress_crash "$dev" "$mnt" "$fstype"
    bad=$(kmsg_errors | wc -l)
    if [ "$bad" -ne 0 ]; then
        kmsg_errors | head -n 15
        STRESS_REASON=${STRESS_REASON:-"$bad kernel log lines match '$KMSG_BAD'"}
        STRESS_REASON="$STRESS_REASON; $bad bad kernel log lines"
    fi
    log "stress: done${STRESS_REASON:+ with failures: $STRESS_REASON}"
    [ -z "$STRESS_REASON" ]
}

# The crash half of stress_run, entered with DEV mounted on MNT: a last batch of files is committed
# to the journal, then the file system is shut down without flushing the log or checkpointing, as a
# power cut would leave it. The next mount replays the journal: it reads the log up to the first
# block that does not continue it, a block never written if the recipe skipped the journal.
stress_crash() { # DEV MNT [FSTYPE]
    dev=$1 mnt=$2 fstype=${3:-ext4}
    stress_phase crash
    stress_wave "$mnt" c $STRESS_FILES_CRASH || STRESS_REASON=${STRESS_REASON:-"writes before the crash failed"}
    sync
    xfs_io -x -c shutdown "$mnt" || STRESS_REASON=${STRESS_REASON:-"EXT4_IOC_SHUTDOWN failed"}
    umount "$mnt" || STRESS_REASON=${STRESS_REASON:-"umount after the crash failed"}
    stress_phase recovery
    drop_caches
    if mount -t "$fstype" "$dev" "$mnt"; then
        stress_verify "$mnt" c $STRESS_FILES_CRASH ||
            STRESS_REASON=${STRESS_REASON:-"files committed before the crash wrong after the journal replay"}
        umount "$mnt" || STRESS_REASON=${STRESS_REASON:-"umount after the recovery failed"}
        stress_phase e2fsck2
        ra=$(blockdev --getra "$dev")
        blockdev --setra 0 "$dev"
        if [ "$fstype" = xfs ]; then
            xfs_repair -n "$dev" >/run/e2fsck2.out 2>&1 ||
                { tail -n 15 /run/e2fsck2.out; STRESS_REASON=${STRESS_REASON:-"xfs_repair -n after the log replay found problems"}; }
        elif ! e2fsck -fn "$dev" >/run/e2fsck2.out 2>&1; then
            tail -n 15 /run/e2fsck2.out
            STRESS_REASON=${STRESS_REASON:-"e2fsck -fn after the journal replay found problems"}
        fi
        blockdev --setra "$ra" "$dev"
    else
        STRESS_REASON=${STRESS_REASON:-"the mount after the crash (journal replay) failed"}
    fi
}
