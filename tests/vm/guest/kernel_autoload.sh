# The kernel check sees targets whose module is not loaded yet (issue 25): `encrypt` must make
# the kernel load dm-integrity and dm-crypt (DM_GET_TARGET_VERSION by name) before it writes a
# byte, so that a too-old target is refused before the LUKS header exists.
# How: unload both modules (the guest's /init loaded them), and point the kernel's module loader
# (/proc/sys/kernel/modprobe) at a helper that records, for each request, how many sectors the
# disk had been written so far, then loads the module from the guest's flat module directory.
# Before this fix the first request came from libcryptsetup's format, after the header was on
# the disk (sectors written > 0).
. /guest/lib.sh
moddir=/lib/modules
[ -d /modules ] && moddir=/modules
rmmod dm_crypt 2>/dev/null || rmmod dm-crypt || fail "cannot unload dm-crypt"
rmmod dm_integrity 2>/dev/null || rmmod dm-integrity || fail "cannot unload dm-integrity"
if grep -q -E '^(dm_crypt|dm_integrity) ' /proc/modules; then fail "dm-crypt or dm-integrity still loaded"; fi
cat >/run/modprobe <<EOS
#!/bin/sh
for m in "\$@"; do
    case \$m in
    dm-integrity|dm-crypt)
        echo "\$m \$(awk '{print \$7}' /sys/block/vda/stat)" >>/run/modprobe.log
        insmod $moddir/\$m.ko
        ;;
    esac
done
exit 0
EOS
chmod +x /run/modprobe
echo /run/modprobe >/proc/sys/kernel/modprobe
mkdir -p /mnt/s
scratchcrypt encrypt /dev/vda --name auto --mount /mnt/s >/run/out 2>&1 || fail "encrypt failed: $(cat /run/out)"
log "module requests (module, sectors written to vda at the request): $(tr '\n' ';' </run/modprobe.log)"
for m in dm-integrity dm-crypt; do
    line=$(grep "^$m " /run/modprobe.log | head -n 1)
    [ -n "$line" ] || fail "the kernel never asked for $m"
    [ "${line#* }" -eq 0 ] || fail "$m was first requested after $((${line#* })) sectors were written"
done
echo hello >/mnt/s/f && sync || fail "write failed"
scratchcrypt cleanup auto --unmount >/dev/null 2>&1 || fail "cleanup failed"
pass
