# The data guard on real metadata made by the real tools (issue 23, item 10): a GPT written by
# sfdisk, an md RAID1 member made by mdadm (array stopped again, so only the guard stands in the
# way), and an LVM physical volume made by pvcreate. `encrypt` must refuse each with exit 4 and a
# message naming what it found, and leave the whole device byte-for-byte as it was (sha256 of
# every byte, before and after). A blank disk beside them is the control: the guard lets it
# through (so a refusal is the guard's verdict, not a broken setup).
# Disks: vda (GPT), vdb + vdc (md RAID1), vdd (LVM PV), vde (blank control); 64 MiB each.
. /guest/lib.sh
mkdir -p /run/mdadm /run/lvm /run/lock/lvm /etc/lvm /mnt/ctl
LVMCONF='devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 } activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }'

printf 'label: gpt\n,32M,L\n' | sfdisk -q /dev/vda >/run/sfdisk.out 2>&1 || fail "sfdisk: $(cat /run/sfdisk.out)"
mdadm --create /dev/md0 --run --quiet --level=1 --raid-devices=2 --metadata=1.2 /dev/vdb /dev/vdc \
    >/run/mdadm.out 2>&1 || fail "mdadm --create: $(cat /run/mdadm.out)"
mdadm --stop /dev/md0 >/run/mdadm.out 2>&1 || fail "mdadm --stop: $(cat /run/mdadm.out)"
lvm pvcreate --config "$LVMCONF" -y /dev/vdd >/run/pv.out 2>&1 || fail "pvcreate: $(cat /run/pv.out)"
sync
echo 3 >/proc/sys/vm/drop_caches

# What blkid (the oracle, not our probe) says each disk is.
for d in vda vdb vdd; do log "blkid -p /dev/$d: $(blkid -p -o export /dev/$d 2>&1 | tr '\n' ' ')"; done

refuse() { # DEV WHAT PATTERN
    dev=$1 what=$2 pat=$3
    before=$(sha256sum <"$dev" | cut -d' ' -f1)
    scratchcrypt encrypt "$dev" --name guard >/run/out 2>/run/err
    rc=$?
    after=$(sha256sum <"$dev" | cut -d' ' -f1)
    echo "GUARD|$what|$dev|exit $rc|$(head -n 1 /run/err)|$([ "$before" = "$after" ] && echo untouched || echo CHANGED)"
    [ "$rc" -eq 4 ] || fail "$what on $dev: exit $rc, expected 4: $(cat /run/err)"
    grep -q -i -E "$pat" /run/err || fail "$what on $dev: the message does not name '$pat': $(cat /run/err)"
    [ "$before" = "$after" ] || fail "$what on $dev: the device changed although encrypt refused it"
    require_no_mapping
}
refuse /dev/vda "GPT partition table" "gpt"
refuse /dev/vdb "md RAID1 member" "linux_raid_member"
refuse /dev/vdd "LVM physical volume" "LVM2_member"

# The control: a blank disk passes the guard and becomes a scratch disk.
scratchcrypt encrypt /dev/vde --name ctl --mount /mnt/ctl >/dev/null 2>/run/err ||
    fail "control: encrypt of a blank disk failed: $(cat /run/err)"
scratchcrypt cleanup ctl --unmount >/dev/null 2>/run/err || fail "control: cleanup failed: $(cat /run/err)"
pass
