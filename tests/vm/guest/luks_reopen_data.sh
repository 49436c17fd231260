# Guest script: write data through scratchcrypt's mapping, close it with `cryptsetup close`,
# reopen with cryptsetup and the same volume key (exported only for this test), read it back.
# Also checks the failure modes that need a live device-mapper: name in use, busy removal,
# removal of a missing name, nonexistent and non-block sources.
. /guest/lib.sh
# The luks_activate example, installed by the harness as /usr/local/bin/scratchcrypt.
LA=$(command -v luks_activate || command -v scratchcrypt) || fail "luks_activate not found"
DEV=${DEV:-/dev/vda}
"$LA" open "$DEV" scratch /tmp/vk || fail "luks_activate open"
dd if=/dev/urandom of=/tmp/data bs=4096 count=1024 2>/dev/null
dd if=/tmp/data of=/dev/mapper/scratch bs=4096 conv=fsync 2>/dev/null || fail "write"
W=$(sha256sum < /tmp/data)
# Name in use: exit status 4 (busy), nothing changes.
"$LA" open "$DEV" scratch; rc=$?
[ $rc -eq 4 ] || fail "second open with the same name exited $rc, expected 4"
# Busy: hold the mapping open, removal must refuse (4) and remove nothing.
exec 3</dev/mapper/scratch
"$LA" remove scratch; rc=$?
exec 3<&-
[ $rc -eq 4 ] || fail "remove of an open mapping exited $rc, expected 4"
dmsetup info scratch >/dev/null 2>&1 || fail "busy remove removed scratch"
dmsetup info scratch_dif >/dev/null 2>&1 || fail "busy remove removed scratch_dif"
cryptsetup close scratch || fail "cryptsetup close"
cryptsetup open --key-size 768 --volume-key-file /tmp/vk "$DEV" again || fail "cryptsetup reopen"
# O_DIRECT: a buffered read would make the kernel read ahead past the 4 MiB written, into
# sectors never written through the mapping (AEAD errors the kernel-log check rightly counts).
R=$(gdd if=/dev/mapper/again bs=4096 count=1024 iflag=direct status=none | sha256sum)
cryptsetup close again
[ "$W" = "$R" ] || fail "data read back differs"
"$LA" remove nothing-here || fail "removing a missing name failed"
"$LA" open /nonexistent scratch; rc=$?
[ $rc -eq 3 ] || fail "nonexistent source exited $rc, expected 3"
: > /tmp/plainfile
"$LA" open /tmp/plainfile scratch; rc=$?
[ $rc -eq 3 ] || fail "a regular file exited $rc, expected 3 (not a block device)"
# Held open exclusively by another process (a mapping over it counts too): refused, untouched.
dmsetup create holder --table "0 8 linear $DEV 0" || fail "dmsetup create holder"
dd if="$DEV" bs=4096 count=256 2>/dev/null | sha256sum > /tmp/before
"$LA" open "$DEV" scratch2; rc=$?
dd if="$DEV" bs=4096 count=256 2>/dev/null | sha256sum > /tmp/after
dmsetup remove holder
[ $rc -eq 4 ] || fail "open of a held device exited $rc, expected 4"
cmp -s /tmp/before /tmp/after || fail "a held device was written"
[ -z "$(dmsetup ls | grep -v 'No devices')" ] || fail "leftover mappings: $(dmsetup ls)"
pass
