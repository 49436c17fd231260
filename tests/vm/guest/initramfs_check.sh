# Checks run by the real root's /sbin/init after a boot through Debian's initramfs with
# scratchcrypt's hook and boot script (tests/vm/initramfs.sh). The label says what was attached:
#   initramfs-boot:    /dev/vdb from the kernel command line (name=scratch) at /scratch, and
#                      /dev/vdc from /etc/scratchcrypttab (name=tab) at /scratch2, both present;
#   initramfs-missing: the same entries, no scratch disk attached;
#   systemd-unit:      a systemd root (initramfs.sh --systemd-root), /dev/vdb prepared by
#                      scratchcrypt@dev-vdb.service at /scratch, with its /dev/disk/by-uuid link
#                      made by udev; then the unit is stopped.
# The whole boot's kernel log must be free of integrity, I/O and ext4 errors (lib.sh: pass).
. /guest/lib.sh "$1"

LOGFILE=/run/initramfs/scratchcrypt.log

# Field 4 of the /proc/mounts line of mount point $1 ("" when not mounted).
mount_of() { awk -v m="$1" '$2 == m { print $1 " " $3 " " $4 }' /proc/mounts; }

# Mounted read-write as /dev/mapper/NAME ext4; files written there read back after drop_caches.
check_mounted_and_usable() { # MOUNTPOINT NAME
    mp=$1 nm=$2
    m=$(mount_of "$mp")
    log "$mp: $m"
    case $m in
    "/dev/mapper/$nm ext4 rw"*) ;;
    *) fail "$mp is not /dev/mapper/$nm mounted read-write as ext4: '$m'" ;;
    esac
    [ -b "/dev/mapper/$nm" ] || fail "/dev/mapper/$nm is not a block device in the real root"
    STRESS_DIRS=4 STRESS_FILES1=25
    stress_wave "$mp" a $STRESS_FILES1 || fail "writing files on $mp failed"
    dd if=/dev/urandom of="$mp/big" bs=1048576 count=8 2>/dev/null || fail "writing 8 MiB on $mp failed"
    sum=$(sha256sum "$mp/big" | cut -d' ' -f1)
    drop_caches
    stress_verify "$mp" a $STRESS_FILES1 || fail "files on $mp read back wrong after drop_caches"
    [ "$(sha256sum "$mp/big" | cut -d' ' -f1)" = "$sum" ] || fail "$mp/big reads back wrong"
    log "$mp: $((STRESS_WRITERS * STRESS_DIRS * STRESS_FILES1)) files and 8 MiB written and read back"
}

log "initramfs log ($LOGFILE):"
cat "$LOGFILE" 2>/dev/null || log "(none)"

case $SCENARIO in
initramfs-boot*)
    for entry in "/dev/vdb /scratch scratch" "/dev/vdc /scratch2 tab"; do
        set -- $entry
        dev=$1 mp=$2 nm=$3
        grep -qx "ok $dev $mp $nm" "$LOGFILE" || fail "the boot script did not log 'ok $dev $mp $nm'"
        check_mounted_and_usable "$mp" "$nm"
    done
    # The list of `status` finds both, with their source and mount point.
    scratchcrypt status || fail "scratchcrypt status failed"
    json=$(scratchcrypt status --json) || fail "scratchcrypt status --json failed"
    echo "$json"
    for want in '"name": "scratch"' '"source": "/dev/vdb"' '"mountpoint": "/scratch"' \
        '"name": "tab"' '"source": "/dev/vdc"' '"mountpoint": "/scratch2"' '"growing": false'; do
        echo "$json" | grep -qF "$want" || fail "status --json lacks $want"
    done
    n=$(echo "$json" | grep -c '"name":')
    [ "$n" -eq 2 ] || fail "status --json lists $n mappings, not 2"
    ;;
initramfs-missing*)
    for entry in "/dev/vdb /scratch" "/dev/vdc /scratch2"; do
        set -- $entry
        grep -q "^failed $1 $2: " "$LOGFILE" || fail "the boot script did not log the failure of $1"
        [ -z "$(mount_of "$2")" ] || fail "$2 is mounted although $1 is missing"
        [ -z "$(ls -A "$2")" ] || fail "$2 is not empty"
    done
    [ "$(scratchcrypt status --json | tr -d ' \n')" = "[]" ] || fail "status lists mappings although no disk was there"
    ls /dev/mapper 2>/dev/null | grep -qv '^control$' && fail "mappings left in /dev/mapper: $(ls /dev/mapper)"
    log "both disks missing: logged, mount points empty, boot went on"
    ;;
systemd-unit*)
    unit=scratchcrypt@dev-vdb.service
    state=$(systemctl is-active "$unit")
    [ "$state" = active ] || { systemctl status --no-pager "$unit"; fail "$unit is $state, not active"; }
    check_mounted_and_usable /scratch dev-vdb
    # udev probed the mapping once it was written (dm::announce, issue 24): its by-uuid link.
    udevadm settle --timeout=60 || log "udevadm settle timed out"
    uuid=$(blkid -p -s UUID -o value /dev/mapper/dev-vdb) || fail "blkid -p /dev/mapper/dev-vdb failed"
    [ -n "$uuid" ] || fail "blkid -p found no UUID on /dev/mapper/dev-vdb"
    [ "$(readlink -f "/dev/disk/by-uuid/$uuid")" = "$(readlink -f /dev/mapper/dev-vdb)" ] ||
        fail "/dev/disk/by-uuid/$uuid does not lead to /dev/mapper/dev-vdb: $(ls -l /dev/disk/by-uuid/ 2>&1)"
    log "/dev/disk/by-uuid/$uuid -> $(readlink -f "/dev/disk/by-uuid/$uuid")"
    json=$(scratchcrypt status --json) || fail "scratchcrypt status --json failed"
    echo "$json"
    for want in '"name": "dev-vdb"' '"source": "/dev/vdb"' '"mountpoint": "/scratch"'; do
        echo "$json" | grep -qF "$want" || fail "status --json lacks $want"
    done
    systemctl stop "$unit" || fail "systemctl stop $unit failed"
    [ -z "$(mount_of /scratch)" ] || fail "/scratch still mounted after the unit stopped"
    [ ! -e /dev/mapper/dev-vdb ] || fail "/dev/mapper/dev-vdb left after the unit stopped"
    [ "$(scratchcrypt status --json | tr -d ' \n')" = "[]" ] || fail "mappings left after the unit stopped"
    log "$unit stopped: unmounted, mapping removed"
    ;;
*) fail "unknown scenario $SCENARIO" ;;
esac
pass
