# Reliability, part 1: every bad input and every injected failure gets a one-line error naming
# the step, the right exit class (3 invalid input, 4 busy, 5 unsupported, 6 I/O), and leaves no
# mapping and no temp dir behind; refusals before formatting leave the device untouched.
# Disks: /dev/vda and /dev/vdb, 256 MiB each.
. /guest/lib.sh
. /guest/rel_lib.sh
SC=scratchcrypt
kmsg_start
mark /dev/vda

# --- bad input, refused before anything is written
truncate -s 64M /run/file.img
mark /run/file.img
# /dev/nope does not exist: /dev/vda stands for "no disk was touched".
expect 3 "does not exist" nonexistent /dev/vda -- $SC encrypt /dev/nope --wait-timeout 0.2
expect 3 "regular file" regular-file /run/file.img -- $SC encrypt /run/file.img
# /dev/zero holds nothing a write could change: nothing to compare.
expect 3 "character device" char-device - -- $SC encrypt /dev/zero
dmsetup create tiny --table "0 16384 linear /dev/vdb 0" || fail "dmsetup create tiny failed"
expect 3 "too small" too-small - -- $SC encrypt /dev/mapper/tiny
dmsetup remove tiny
expect 2 "contains" name-invalid /dev/vda -- $SC encrypt /dev/vda --name a/b
dmsetup create taken --table "0 8 error" || fail "dmsetup create taken failed"
expect 4 "already in use" name-taken /dev/vda -- $SC encrypt /dev/vda --name taken
dmsetup remove taken

# --- the device is busy: mounted, or claimed by another device-mapper table
mkfs.ext4 -q -F /dev/vdb || fail "mkfs.ext4 on vdb failed"
mkdir -p /mnt && mount -t ext4 /dev/vdb /mnt || fail "mount vdb failed"
expect 4 "in use" mounted - -- $SC encrypt /dev/vdb
umount /mnt
dmsetup create hold --table "0 8 linear /dev/vdb 0" || fail "dmsetup create hold failed"
expect 4 "in use" held-by-dm - -- $SC encrypt /dev/vdb
dmsetup remove hold

# --- a partition of a disk whose other partition is mounted: allowed
# MBR: vdb1 = sectors 2048..264191 (129 MiB), vdb2 = 264192..524287, both type 0x83.
printf '\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' | gdd of=/dev/vdb bs=1 seek=446 conv=notrunc status=none
le32() { printf "\\$(printf %03o $(($1 & 255)))\\$(printf %03o $((($1 >> 8) & 255)))\\$(printf %03o $((($1 >> 16) & 255)))\\$(printf %03o $((($1 >> 24) & 255)))"; }
entry() { printf '\000\376\377\377\203\376\377\377'; le32 "$1"; le32 "$2"; }
{ entry 2048 262144; entry 264192 260096; printf '%032d' 0 | tr 0 '\000'; printf '\125\252'; } |
    gdd of=/dev/vdb bs=1 seek=446 conv=notrunc status=none
blockdev --rereadpt /dev/vdb || fail "re-reading vdb's partition table failed"
sleep 0.5
[ -b /dev/vdb1 ] && [ -b /dev/vdb2 ] || fail "no vdb1/vdb2 after writing the partition table"
mkfs.ext4 -q -F /dev/vdb2 && mount -t ext4 /dev/vdb2 /mnt || fail "mount vdb2 failed"
$SC encrypt /dev/vdb1 --name part >/run/out 2>/run/err || fail "encrypt vdb1 beside mounted vdb2: $(cat /run/err)"
echo "MATRIX|partition-beside-mounted|scratchcrypt encrypt /dev/vdb1|0|$(cat /run/out)|-"
$SC cleanup part || fail "cleanup part failed"
umount /mnt

# --- the data guard (issue 14): someone's file system is refused (exit 4) and left
# byte-for-byte as it was; --force writes over it; a scratchcrypt disk is re-made without it
sum_vdb2() { gdd if=/dev/vdb2 bs=1M count=8 iflag=direct status=none | md5sum; }
before=$(sum_vdb2)
expect 4 "holds ext4 (filesystem)" holds-ext4 - -- $SC encrypt /dev/vdb2
[ "$(sum_vdb2)" = "$before" ] || fail "holds-ext4: the refused device was written to"
$SC encrypt /dev/vdb2 --name forced --force >/dev/null 2>/run/err ||
    fail "encrypt --force over ext4 failed: $(cat /run/err)"
echo "MATRIX|force-over-ext4|scratchcrypt encrypt /dev/vdb2 --force|0|-|no"
$SC cleanup forced || fail "cleanup forced failed"
$SC encrypt /dev/vdb2 --name remade >/dev/null 2>/run/err ||
    fail "re-making a scratchcrypt disk without --force failed: $(cat /run/err)"
echo "MATRIX|remake-own-disk|scratchcrypt encrypt /dev/vdb2 (holds a scratchcrypt header)|0|-|no"
$SC cleanup remade || fail "cleanup remade failed"
# (busybox mkswap leaves the old LUKS header at offset 0 in place; util-linux mkswap would wipe it)
gdd if=/dev/zero of=/dev/vdb2 bs=1M count=1 oflag=direct status=none && mkswap /dev/vdb2 >/dev/null 2>&1 || fail "mkswap vdb2 failed"
expect 4 "holds swap" holds-swap - -- $SC encrypt /dev/vdb2

# --- cleanup touches only LUKS2 crypt-over-integrity stacks (issue 14): a plain LUKS2-named
# mapping without integrity is refused, left in place, and removed only with --force
dmsetup create victim -u CRYPT-LUKS2-00112233445566778899aabbccddeeff-victim --table "0 8 error" ||
    fail "dmsetup create victim failed"
expect 3 "not a LUKS2 crypt-over-integrity stack" cleanup-not-a-stack - -- $SC cleanup victim
dmsetup info victim >/dev/null 2>&1 || fail "cleanup-not-a-stack: the refused mapping was removed"
$SC cleanup victim --force || fail "cleanup --force victim failed"
! dmsetup info victim >/dev/null 2>&1 || fail "cleanup --force left victim"
echo "MATRIX|cleanup-force|scratchcrypt cleanup victim --force|0|-|-"
# Issue 26 item 3: `cleanup --unmount` of a mapping of another tool (a plain dm-linear device,
# mounted ext4) refuses before it unmounts anything, with or without --force.
mkfs.ext4 -q -F /dev/vdb2 || fail "mkfs.ext4 vdb2 failed"
dmsetup create victim --table "0 $(blockdev --getsz /dev/vdb2) linear /dev/vdb2 0" ||
    fail "dmsetup create victim (linear) failed"
mkdir -p /mnt/victim && mount -t ext4 /dev/mapper/victim /mnt/victim || fail "mount victim failed"
expect 3 "not a LUKS2 crypt-over-integrity stack" cleanup-unmount-not-ours - -- $SC cleanup --unmount victim
grep -q ' /mnt/victim ' /proc/mounts || fail "cleanup-unmount-not-ours: the foreign mount was unmounted"
expect 3 "is not ours" cleanup-unmount-force-not-ours - -- $SC cleanup --unmount --force victim
grep -q ' /mnt/victim ' /proc/mounts || fail "cleanup-unmount-force-not-ours: the foreign mount was unmounted"
umount /mnt/victim && dmsetup remove victim || fail "removing the test's own victim failed"

# --- the temp dir cannot hold the image (the header is already written: device not untouched)
mkdir -p /rfs /small /rotmp
mount -t ramfs ramfs /rfs
expect 5 "report" temp-on-ramfs no -- $SC encrypt /dev/vda --temp-dir /rfs
mount -t tmpfs -o size=16k tmpfs /small
expect 6 "No space left" temp-full no -- $SC encrypt /dev/vda --temp-dir /small
mount -t tmpfs -o ro tmpfs /rotmp
expect 6 "prepare the temp dir" temp-read-only no -- $SC encrypt /dev/vda --temp-dir /rotmp

# The kernel log stays clean up to here; the next case provokes I/O errors on purpose.
kmsg_require_clean "bad input, busy devices, partitions, temp dirs"
# --- a write error on the device while zeroing: the source's tail is the error target
dmsetup create flaky --table "0 131072 linear /dev/vdb1 0
131072 131072 error" || fail "dmsetup create flaky failed"
# The data guard cannot read the error region either: a probe read error refuses the run...
mark /dev/mapper/flaky
expect 6 "check the source for existing data" probe-read-error /dev/mapper/flaky -- $SC encrypt /dev/mapper/flaky --name fl
# ...and --force skips the guard, so the write error while zeroing is reached.
expect 6 "zero the metadata ranges" write-error no -- $SC encrypt /dev/mapper/flaky --name fl --force
dmsetup remove flaky
kmsg_start # the rest is checked by `pass` again

# --- the kernel lacks a target: unload it and stop module autoloading
echo /nonexistent >/proc/sys/kernel/modprobe
rmmod dm_crypt || fail "rmmod dm_crypt failed"
expect 5 "dm-crypt" no-dm-crypt - -- $SC encrypt /dev/vda
insmod "$(grep '/dm-crypt.ko' /guest/modules)" || fail "reloading dm-crypt failed"
rmmod dm_integrity || fail "rmmod dm_integrity failed"
expect 5 "dm-integrity" no-dm-integrity - -- $SC encrypt /dev/vda
insmod "$(grep '/dm-integrity.ko' /guest/modules)" || fail "reloading dm-integrity failed"

# --- udev's control socket left behind by an exited udevd (a path nobody listens on): the
# devicemapper crate and libdevmapper take udev for running and would wait for it for ever;
# refused at once instead (`timeout` turns a regression into a failure, not a hung boot)
mkdir -p /run/udev && : >/run/udev/control
expect 5 "no udev daemon listens" stale-udev - -- timeout 120 $SC encrypt /dev/vda
rm -f /run/udev/control

# --- and after all that, the device still encrypts fine
$SC encrypt /dev/vda --name final >/dev/null || fail "encrypt after the failures failed"
$SC cleanup final || fail "cleanup final failed"
require_no_mapping
pass
