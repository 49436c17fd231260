# Scenario 1: the guest kernel can create dm-integrity + dm-crypt devices (cryptsetup oracle),
# write and read a block through them, and remove them.
. /guest/lib.sh
kmsg_start
log "luksFormat (luks2, hmac-sha256, no wipe, pbkdf2 1000, sector 4096)"
oracle_format /dev/vda --integrity-no-wipe || fail "cryptsetup luksFormat failed"
oracle_open /dev/vda sanity || fail "cryptsetup open failed"
[ -b /dev/mapper/sanity ] || fail "/dev/mapper/sanity missing after open"
dmsetup table sanity_dif | grep -q integrity || fail "sanity_dif is not a dm-integrity mapping"
dmsetup table sanity | grep -q "crypt capi:authenc(hmac(sha256),xts(aes))-plain64" ||
    fail "sanity is not the expected dm-crypt mapping: $(dmsetup table sanity | cut -d' ' -f1-4)"
head -c 1048576 /dev/urandom >/run/block
dd if=/run/block of=/dev/mapper/sanity bs=4096 seek=100 conv=fsync 2>/dev/null || fail "write failed"
echo 3 >/proc/sys/vm/drop_caches
# O_DIRECT: page-cache readahead would read never-written blocks past the range (AEAD errors).
gdd if=/dev/mapper/sanity of=/run/back bs=4096 skip=100 count=256 iflag=direct status=none || fail "read back failed"
cmp /run/block /run/back || fail "data read back differs"
cryptsetup close sanity || fail "cryptsetup close failed"
require_no_mapping
kmsg_require_clean "format, write, read, close"
pass
