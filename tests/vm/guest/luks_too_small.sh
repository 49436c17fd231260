# Guest script (run with a disk smaller than 10 MiB, e.g. 8M): the device is refused as too
# small (exit status 3) before anything is written.
if [ -f /guest/lib.sh ]; then
    . /guest/lib.sh   # the shared harness's verdict helpers
else
    SCENARIO=${1:-$(basename "$0" .sh)}
    pass() { echo "SCRATCHCRYPT-VM: PASS $SCENARIO"; exit 0; }
    fail() { echo "SCRATCHCRYPT-VM: FAIL $SCENARIO: $*"; exit 1; }
fi
# The luks_activate example (the shared harness installs it as /usr/local/bin/scratchcrypt).
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
