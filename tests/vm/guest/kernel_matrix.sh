# One boot per guest kernel (tests/vm_kernels.rs, issue 25): the core scenarios of the 6.1 suite,
# run in sequence on their own disks, plus the facts that differ by kernel, printed as
# `KERNEL|<fact>|<value>` lines. Each part is an existing scenario script, unchanged, run as a
# child with its own label (its PASS/FAIL lines appear on the console; a FAIL fails the boot).
# Disks: vda 1G (facts, then the reliability rows), vdb 4G (fast start with growth under load),
# vdc 1G (LUKS interop with cryptsetup), vdd 1G (second disk of the reliability signal rows).
# Needs: scratchcrypt as the binary; the luks_activate example and the part scripts as extra
# files in /guest (run.sh --file).
. /guest/lib.sh
SC=scratchcrypt
fact() { echo "KERNEL|$1|$2"; }
# Run /guest/SCRIPT as part LABEL, with /dev/vdX renamed by the sed expression SED (or none).
part() { # LABEL SCRIPT [SED]
    label=$1 script=$2 expr=${3:-}
    [ -f "/guest/$script" ] || fail "part $label: /guest/$script missing (pass it with --file)"
    if [ -n "$expr" ]; then
        sed "$expr" "/guest/$script" >"/run/$label.sh"
    else
        cp "/guest/$script" "/run/$label.sh"
    fi
    t0=$(cut -d. -f1 /proc/uptime)
    log "part $label: $script${expr:+ ($expr)}"
    sh "/run/$label.sh" "$label" || fail "part $label ($script) failed"
    rm -f /run/verdict
    fact "part-seconds-$label" "$(($(cut -d. -f1 /proc/uptime) - t0))"
    require_no_mapping
}

fact uname "$(uname -r)"
dmsetup targets | while read -r t v; do fact "target-$t" "$v"; done

# --- facts: the tables scratchcrypt loads, what the kernel reports back, ext4's mount options
kmsg_start
mkdir -p /mnt
out=$($SC encrypt /dev/vda --name facts --json) || fail "facts: encrypt failed (status $?)"
fact dif-table "$(dmsetup table facts_dif)"
fact crypt-table "$(dmsetup table facts | sed -E 's/ :96:logon:[^ ]+ / KEYRING-REF /; s/ [0-9a-f]{192} / HEX-KEY /')"
fact zeroed-bytes "$(echo "$out" | sed -n 's/.*"zeroed": *\([0-9]*\).*/\1/p' | head -n 1)"
fact zero-step "$(echo "$out" | tr -d '\n ' | grep -o '"step":"zero_ranges"[^}]*' | head -n 1)"
fact sb-mount-options "$(dumpe2fs -h /dev/mapper/facts 2>/dev/null | sed -n 's/^Mount options: *//p')"
mount -t ext4 /dev/mapper/facts /mnt || fail "facts: mount failed"
fact proc-mounts "$(grep ' /mnt ' /proc/mounts | cut -d' ' -f4)"
fact itable-zeroing "$(dmesg | grep -c 'ext4lazyinit\|init_itable' ) kernel lines about lazy inode-table init"
umount /mnt
e2fsck -fn /dev/mapper/facts >/dev/null 2>&1 || fail "facts: e2fsck -fn of the new file system"
$SC cleanup facts || fail "facts: cleanup failed"
# The fast start's file system: its superblock's mount options and what the kernel mounted.
$SC encrypt /dev/vdb --name ff --mount /mnt --fast-start >/dev/null || fail "facts: fast start failed"
fact fast-start-sb-mount-options "$(dumpe2fs -h /dev/mapper/ff 2>/dev/null | sed -n 's/^Mount options: *//p')"
fact fast-start-proc-mounts "$(grep ' /mnt ' /proc/mounts | cut -d' ' -f4)"
$SC cleanup ff --unmount || fail "facts: cleanup of the growing fast start failed"
require_no_mapping
kmsg_require_clean "facts"
# A boot for the facts alone (kernel command line scratchcrypt_facts_only): for kernels whose
# scenarios run elsewhere (6.1: tests/vm*.rs).
grep -q scratchcrypt_facts_only /proc/cmdline && pass

# --- LUKS interop with cryptsetup (the luks_activate example), on vdc
cp /guest/luks_activate /usr/local/bin/luks_activate
export DEV=/dev/vdc
part luks-format-activate luks_format_activate.sh
part luks-tables-equal luks_tables_equal.sh
unset DEV
# --- fast start: encrypt --fast-start, growth under load (writers while `grow` resumes a killed
# grower), status, then the integrity stress on the grown file system (waves, drop_caches,
# e2fsck, remount, crash and journal replay) and cleanup of a growing mapping; on vdb (4G).
# The stress runs with 10 directories per writer instead of 25 (4,000 + 1,600 files instead of
# 10,000 + 4,000; Orlov still spreads the top-level directories over the groups): the full one
# on the grown 4 GiB took 5 min under 5.10 alone, more than this boot's budget (README, "Tests").
# The plain encrypt path is the facts part above and the reliability rows below.
part fast-start fast_start.sh 's#/dev/vda#/dev/vdb#g; s#^stress_run "\$mapper"#STRESS_DIRS=10; stress_run "$mapper"#'
# --- reliability: concurrency, SIGKILL + cleanup, SIGTERM/INT/HUP rollback, key hygiene
part rel-concurrency rel_concurrency.sh 's#/dev/vdb#/dev/vdd#g'

fact integrity-errors "$(grep -cE 'AEAD ERROR|integrity: .*[Cc]hecksum|I/O error' /run/kmsg.all)"
pass
