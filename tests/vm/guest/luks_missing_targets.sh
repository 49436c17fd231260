# Guest script: a kernel without dm-integrity, then without dm-crypt. The modules are unloaded
# and module autoloading is disabled, so table loads for those targets fail; the errors must
# name the missing target (exit status 5, "unsupported") and leave no mapping behind.
DEV=${DEV:-/dev/vda}
fail() { echo "VM-TEST FAIL: $*"; exit 1; }
echo /nonexistent-modprobe > /proc/sys/kernel/modprobe
rmmod dm_integrity 2>/dev/null
grep -q '^dm_integrity ' /proc/modules && fail "cannot unload dm_integrity"
luks_activate open "$DEV" scratch 2>/tmp/err; rc=$?
cat /tmp/err
[ $rc -eq 5 ] || fail "without dm-integrity: exit $rc, expected 5"
grep -q 'no dm-integrity target' /tmp/err || fail "dm-integrity not named"
[ -z "$(dmsetup ls | grep -v 'No devices')" ] || fail "leftover mappings: $(dmsetup ls)"
modprobe dm_integrity 2>/dev/null || insmod "$(find / -name "dm-integrity.ko*" 2>/dev/null | head -1)" 2>/dev/null
grep -q '^dm_integrity ' /proc/modules || { echo "VM-TEST SKIP: cannot reload dm_integrity"; echo "VM-TEST PASS"; exit 0; }
rmmod dm_crypt 2>/dev/null
grep -q '^dm_crypt ' /proc/modules && fail "cannot unload dm_crypt"
luks_activate open "$DEV" scratch 2>/tmp/err; rc=$?
cat /tmp/err
[ $rc -eq 5 ] || fail "without dm-crypt: exit $rc, expected 5"
grep -q 'no dm-crypt target' /tmp/err || fail "dm-crypt not named"
[ -z "$(dmsetup ls | grep -v 'No devices')" ] || fail "leftover mappings: $(dmsetup ls)"
echo "VM-TEST PASS"
