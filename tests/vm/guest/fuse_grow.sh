# The native online-growth tests (tests/fuse_grow.rs: the strict-read FUSE device, the library's
# grower, and its negative controls) run here because root in this guest has CAP_SYS_RESOURCE,
# which the project's machines lack. Skips are failures (SCRATCHCRYPT_REQUIRE_PRIVILEGED=1), and
# the verdict needs libtest's own summary with every test of the binary passed.
. /guest/lib.sh
# The negative controls make the strict device refuse reads on purpose (I/O and EXT4-fs errors on
# the loop device); the test binary checks every refused read itself, more precisely than the
# kernel log can. So errors are expected here, but only ever on a loop device: nothing else in
# this guest may log one (checked before the verdict; `pass` still checks the fatal patterns).
KMSG_EXPECT_ERRORS=1
[ -c /dev/fuse ] || fail "no /dev/fuse in the guest (fuse module not loaded)"
grep -q 'CapEff:.*' /proc/self/status || fail "no CapEff in /proc/self/status"
bin=$(ls /usr/local/bin/fuse_grow-* 2>/dev/null | head -n 1)
[ -x "$bin" ] || fail "no fuse_grow test binary in /usr/local/bin"
total=$("$bin" --list 2>/dev/null | grep -c ': test$')
[ "$total" -ge 5 ] || fail "the test binary lists $total tests, expected at least 5"
log "running $bin ($total tests)"
SCRATCHCRYPT_REQUIRE_PRIVILEGED=1 TMPDIR=/tmp "$bin" --test-threads=1 >/run/fuse_grow.out 2>&1
rc=$?
cat /run/fuse_grow.out
[ "$rc" -eq 0 ] || fail "fuse_grow exited with status $rc"
grep -q "^test result: ok. $total passed; 0 failed; 0 ignored" /run/fuse_grow.out ||
    fail "libtest did not report all $total tests passed"
other=$(kmsg_errors | grep -v -E 'dev loop[0-9]|device loop[0-9]')
[ -z "$other" ] || fail "kernel errors outside the strict loop device: $other"
log "kernel error lines, all on the strict loop device (the negative controls): $(kmsg_errors | wc -l)"
pass
