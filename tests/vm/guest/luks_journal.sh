# Guest script: a header formatted with the one-section integrity journal works with stock
# cryptsetup: `luksDump`, `cryptsetup status`, `open --integrity-no-journal` (mode D) and a
# journaled open (mode J, after `--persistent` dropped the no-journal flag); data written in
# one mode reads back in the other; the kernel logs no integrity error.
# Needs: luks_activate (installed as scratchcrypt), cryptsetup, dmsetup; the disk as /dev/vda.
. /guest/lib.sh
LA=$(command -v luks_activate || command -v scratchcrypt) || fail "luks_activate not found"
DEV=${DEV:-/dev/vda}
CS="cryptsetup --disable-locks --disable-external-tokens"
# Read N 4 KiB blocks from block SKIP of DEV with O_DIRECT: a buffered read would read ahead
# into blocks never written, and each such read is an integrity error.
rd() { gdd if="$1" bs=4096 skip="$2" count="$3" iflag=direct status=none | sha256sum; }
kmsg_start
"$LA" open "$DEV" ours /tmp/vk || fail "luks_activate open"
ours=$(dmsetup table ours_dif)
log "ours_dif: $ours"
case $ours in *" D "*"journal_sectors:264 "*) ;; *) fail "our table: $ours" ;; esac
$CS luksDump "$DEV" >/tmp/dump || fail "luksDump"
cat /tmp/dump
grep -q 'no-journal' /tmp/dump || fail "luksDump shows no no-journal flag"
$CS status ours >/tmp/status || fail "cryptsetup status of our mapping"
cat /tmp/status
grep -q 'integrity: hmac(sha256)' /tmp/status || fail "status: no hmac(sha256)"
dd if=/dev/urandom of=/tmp/a bs=4096 count=256 2>/dev/null
dd if=/tmp/a of=/dev/mapper/ours bs=4096 conv=fsync 2>/dev/null || fail "write through ours"
"$LA" remove ours || fail "remove ours"

# cryptsetup open --integrity-no-journal: mode D, the same journal_sectors the kernel read.
$CS open --key-size 768 --volume-key-file /tmp/vk --integrity-no-journal "$DEV" nj ||
    fail "cryptsetup open --integrity-no-journal"
nj=$(dmsetup table nj_dif)
log "nj_dif: $nj"
case $nj in *" D "*"journal_sectors:264 "*) ;; *) fail "no-journal table: $nj" ;; esac
[ "$(rd /dev/mapper/nj 0 256)" = "$(sha256sum </tmp/a)" ] ||
    fail "data differs after open --integrity-no-journal"
$CS close nj || fail "close nj"

# A journaled open: --persistent without --integrity-no-journal stores the flags given, so
# the header's no-journal flag goes and the mapping runs in mode J with the 1-section journal.
if $CS open --key-size 768 --volume-key-file /tmp/vk --persistent "$DEV" j 2>/tmp/jerr; then
    jt=$(dmsetup table j_dif)
    log "j_dif: $jt"
    $CS luksDump "$DEV" | grep -i flags
    case $jt in
    *" J "*"journal_sectors:264 "*) ;;
    *" D "*) log "cryptsetup kept mode D: $jt"; fail "journaled open stayed in mode D" ;;
    *) fail "journaled table: $jt" ;;
    esac
    [ "$(rd /dev/mapper/j 0 256)" = "$(sha256sum </tmp/a)" ] ||
        fail "data differs after the journaled open"
    # Writes through the journal (many more blocks than its 32 entries), read back after a
    # close and a reopen in mode D.
    dd if=/dev/urandom of=/tmp/b bs=4096 count=2048 2>/dev/null
    dd if=/tmp/b of=/dev/mapper/j bs=4096 seek=256 conv=fsync 2>/dev/null || fail "write in mode J"
    $CS close j || fail "close j"
    $CS open --key-size 768 --volume-key-file /tmp/vk --integrity-no-journal "$DEV" nj2 ||
        fail "reopen without journal"
    [ "$(rd /dev/mapper/nj2 256 2048)" = "$(sha256sum </tmp/b)" ] || fail "data written in mode J differs in mode D"
    $CS close nj2 || fail "close nj2"
    echo "JOURNAL journaled-open=works"
else
    echo "JOURNAL journaled-open=fails: $(cat /tmp/jerr)"
    dmesg | tail -n 5
    fail "journaled open failed: $(cat /tmp/jerr)"
fi
require_no_mapping
kmsg_require_clean "format, D and J opens, writes, reads"
pass
