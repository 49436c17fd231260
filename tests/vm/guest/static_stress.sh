# The integrity stress with the static scratchcrypt in a guest that has no shared library at all
# (run.sh --no-libs: no /lib, no /usr/lib, no dynamic oracle tools; busybox-static and Debian's
# static e2fsck). Encrypt, mount, the stress of lib.sh, cleanup; the kernel log must stay clean.
# Not here: the crash phase (xfs_io's EXT4_IOC_SHUTDOWN has no static build) and dmsetup (the
# mapping check reads /sys/block instead); both run with the dynamic binary in
# scratchcrypt_stress.sh.
. /guest/lib.sh
# A smaller stress than scratchcrypt_stress.sh (same writers, phases and checks, fewer files): the
# point here is the binary, and the full one runs with the dynamic build.
STRESS_FILES1=40
STRESS_FILES2=16

# The image itself: no shared-library directory, no .so file, the binary an ELF without interpreter.
for d in /lib /lib64 /usr/lib /usr/lib64; do
    [ -e "$d" ] && fail "$d exists in a guest that must have no shared library"
done
so=$(find / -xdev -name '*.so*' 2>/dev/null | head -n 3)
[ -z "$so" ] || fail "shared libraries in the guest: $so"
[ -x /usr/local/bin/scratchcrypt ] || fail "no /usr/local/bin/scratchcrypt"
log "no shared library in the guest; scratchcrypt $(scratchcrypt --version)"

# lib.sh's crash phase needs xfs_io: unmount cleanly instead, as it would have left the fs.
stress_crash() { # DEV MNT
    log "stress: crash phase left out (no static xfs_io)"
    umount "$2" || STRESS_REASON=${STRESS_REASON:-"umount after the remount failed"}
}

# No dmsetup here: a mapping shows as /sys/block/dm-*.
require_no_dm() {
    left=$(ls -d /sys/block/dm-* 2>/dev/null)
    [ -z "$left" ] || fail "mappings left after cleanup: $left"
    log "no mapping left"
}

kmsg_start
log "scratchcrypt encrypt /dev/vda --name st"
t0=$(cut -d' ' -f1 /proc/uptime)
mapper=$(scratchcrypt encrypt /dev/vda --name st) || fail "scratchcrypt encrypt failed (status $?)"
t1=$(cut -d' ' -f1 /proc/uptime)
log "encrypt took $(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}') s"
[ -b "$mapper" ] || fail "scratchcrypt encrypt printed '$mapper', which is not a block device"
kmsg_require_clean "scratchcrypt encrypt"
stress_run "$mapper" /mnt || { scratchcrypt cleanup st; fail "stress: $STRESS_REASON"; }
scratchcrypt cleanup st || fail "scratchcrypt cleanup failed (status $?)"
require_no_dm
kmsg_require_clean "encrypt, stress, e2fsck, remount, cleanup"
pass
