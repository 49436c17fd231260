# Guest script (run with a disk smaller than 10 MiB, e.g. 8M): the device is refused as too
# small (exit status 3) before anything is written.
. /guest/lib.sh
# The luks_activate example, installed by the harness as /usr/local/bin/scratchcrypt.
LA=$(command -v luks_activate || command -v scratchcrypt) || fail "luks_activate not found"
DEV=${DEV:-/dev/vda}
dd if="$DEV" bs=65536 2>/dev/null | sha256sum > /tmp/before
"$LA" open "$DEV" scratch 2>/tmp/err; rc=$?
cat /tmp/err
dd if="$DEV" bs=65536 2>/dev/null | sha256sum > /tmp/after
[ $rc -eq 3 ] || fail "exit $rc, expected 3"
grep -q 'too small' /tmp/err || fail "message does not say too small"
cmp -s /tmp/before /tmp/after || fail "the device was written"
pass
