# Guest script: the tables scratchcrypt loads equal (names and key aside) those that
# `cryptsetup open --volume-key-file` loads for the same header.
. /guest/lib.sh
# The luks_activate example, installed by the harness as /usr/local/bin/scratchcrypt.
LA=$(command -v luks_activate || command -v scratchcrypt) || fail "luks_activate not found"
DEV=${DEV:-/dev/vda}
# Normalise: drop the name, replace the dif device number and the key field.
norm() { sed -E 's/^[^:]*: //; s/ 0 [0-9]+:[0-9]+ 0 / 0 DIF 0 /; s/ :96:logon:[^ ]+ / KEY /; s/ [0-9a-f]{192} / KEY /'; }
"$LA" open "$DEV" scratch /tmp/vk || fail "luks_activate open"
dmsetup table scratch_dif | norm > /tmp/ours_dif
dmsetup table scratch | norm > /tmp/ours_crypt
dmsetup info -c --noheadings -o name,uuid | sort > /tmp/ours_uuid
"$LA" remove scratch || fail "luks_activate remove"
cryptsetup open --key-size 768 --volume-key-file /tmp/vk "$DEV" scratch || fail "cryptsetup open"
dmsetup table scratch_dif | norm > /tmp/ref_dif
dmsetup table scratch | norm > /tmp/ref_crypt
dmsetup info -c --noheadings -o name,uuid | sort > /tmp/ref_uuid
cryptsetup close scratch
for f in dif crypt uuid; do
  echo "ours $f: $(cat /tmp/ours_$f)"
  echo "ref  $f: $(cat /tmp/ref_$f)"
  cmp -s /tmp/ours_$f /tmp/ref_$f || fail "$f tables differ"
done
# The hex-key fallback loads the same table, the key aside.
"$LA" open-hex "$DEV" scratch || fail "luks_activate open-hex"
dmsetup table scratch | grep -q ':96:logon:' && fail "open-hex used the keyring"
dmsetup table scratch | norm > /tmp/hex_crypt
"$LA" remove scratch || fail "remove after open-hex"
echo "hex  crypt: $(cat /tmp/hex_crypt)"
cmp -s /tmp/hex_crypt /tmp/ref_crypt || fail "hex-key crypt table differs"
pass
