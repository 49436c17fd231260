# Guest script: a kernel without dm-integrity, then without dm-crypt. The modules are unloaded
# and module autoloading is disabled, so table loads for those targets fail; the errors must
# name the missing target (exit status 5, "unsupported") and leave no mapping behind.
. /guest/lib.sh
# The luks_activate example, installed by the harness as /usr/local/bin/scratchcrypt.
LA=$(command -v luks_activate || command -v scratchcrypt) || fail "luks_activate not found"
DEV=${DEV:-/dev/vda}
echo /nonexistent-modprobe > /proc/sys/kernel/modprobe
rmmod dm_integrity 2>/dev/null
grep -q '^dm_integrity ' /proc/modules && fail "cannot unload dm_integrity"
"$LA" open "$DEV" scratch 2>/tmp/err; rc=$?
cat /tmp/err
[ $rc -eq 5 ] || fail "without dm-integrity: exit $rc, expected 5"
grep -q 'no dm-integrity target' /tmp/err || fail "dm-integrity not named"
[ -z "$(dmsetup ls | grep -v 'No devices')" ] || fail "leftover mappings: $(dmsetup ls)"
modprobe dm_integrity 2>/dev/null || insmod "$(find / -name "*dm-integrity.ko*" 2>/dev/null | head -1)" 2>/dev/null
grep -q '^dm_integrity ' /proc/modules || fail "cannot reload dm_integrity for the dm-crypt case"
rmmod dm_crypt 2>/dev/null
grep -q '^dm_crypt ' /proc/modules && fail "cannot unload dm_crypt"
"$LA" open "$DEV" scratch 2>/tmp/err; rc=$?
cat /tmp/err
[ $rc -eq 5 ] || fail "without dm-crypt: exit $rc, expected 5"
grep -q 'no dm-crypt target' /tmp/err || fail "dm-crypt not named"
[ -z "$(dmsetup ls | grep -v 'No devices')" ] || fail "leftover mappings: $(dmsetup ls)"
pass
