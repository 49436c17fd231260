# Guest script (busybox sh): format + activate with scratchcrypt's luks_activate example, then
# check the header with `cryptsetup luksDump` and both layers with `cryptsetup status`/dmsetup.
# Needs: luks_activate, cryptsetup, dmsetup in PATH; the test disk as /dev/vda.
# Verdict: `SCRATCHCRYPT-VM: PASS <label>` or `SCRATCHCRYPT-VM: FAIL <label>: <what>`.
. /guest/lib.sh
# The luks_activate example, installed by the harness as /usr/local/bin/scratchcrypt.
LA=$(command -v luks_activate || command -v scratchcrypt) || fail "luks_activate not found"
DEV=${DEV:-/dev/vda}
dmesg -c >/dev/null
"$LA" open "$DEV" scratch || fail "luks_activate open exited $?"
# Format and activation must not read a block that was never written (integrity errors).
bad=$(dmesg | grep -E 'AEAD ERROR|I/O error|Checksum failed|checksum failed')
[ -z "$bad" ] || fail "kernel logged: $bad"
cryptsetup luksDump "$DEV" > /tmp/dump || fail "luksDump"
cat /tmp/dump
grep -q '^Version:[[:space:]]*2$' /tmp/dump || fail "not LUKS2"
grep -q 'no-journal' /tmp/dump || fail "flag no-journal missing"
grep -q 'integrity: hmac(sha256)' /tmp/dump || fail "integrity not hmac(sha256)"
grep -q 'sector: 4096 \[bytes\]' /tmp/dump || fail "sector size not 4096"
grep -q 'cipher: aes-xts-plain64' /tmp/dump || fail "cipher"
# No keyslot: the "Keyslots:" section is directly followed by "Tokens:".
awk '/^Keyslots:/{k=1;next} k&&/^Tokens:/{ok=1} k{exit} END{exit !ok}' /tmp/dump || fail "a keyslot exists"
cryptsetup status scratch > /tmp/status || fail "cryptsetup status scratch"
cat /tmp/status
grep -q 'type:[[:space:]]*LUKS2' /tmp/status || fail "status type"
grep -q 'integrity: hmac(sha256)' /tmp/status || fail "status integrity"
cryptsetup status scratch_dif || fail "cryptsetup status scratch_dif"
dmsetup table scratch | grep -q ' crypt ' || fail "crypt layer"
dmsetup table scratch_dif | grep -q ' integrity ' || fail "integrity layer"
dmsetup table scratch | grep -q ':96:logon:cryptsetup:' || fail "key not in keyring form"
[ -b /dev/mapper/scratch ] || fail "no /dev/mapper/scratch node"
cryptsetup close scratch || fail "cryptsetup close"
[ -z "$(dmsetup ls | grep scratch)" ] || fail "cryptsetup close left $(dmsetup ls)"
# Our own removal takes the nodes it made as well.
"$LA" open "$DEV" scratch || fail "second luks_activate open"
"$LA" remove scratch || fail "luks_activate remove"
[ -e /dev/mapper/scratch ] && fail "/dev/mapper/scratch left behind"
[ -e /dev/mapper/scratch_dif ] && fail "/dev/mapper/scratch_dif left behind"
[ -z "$(dmsetup ls | grep scratch)" ] || fail "remove left $(dmsetup ls)"
pass
