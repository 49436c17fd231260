# Fast-start benchmark (scripts/vm-bench-fast-start.sh), two fresh disks of the same size:
#   /dev/vda  scratchcrypt encrypt --fast-start --mount, then `grow` while a writer fills it
#   /dev/vdb  scratchcrypt encrypt --mount (the full format)
# Prints `BENCH key=value ...` lines. Times from /proc/uptime; bytes from the disks' own
# write counters (/sys/block/<dev>/stat, sectors written).
. /guest/lib.sh

now() { cut -d' ' -f1 /proc/uptime; }
written() { awk '{print $7 * 512}' "/sys/block/$1/stat"; }
json_num() { sed -n "s/.*\"$1\": *\([0-9.]*\).*/\1/p" "$2" | head -n 1; }
kmsg_start
mkdir -p /mnt/f /mnt/g

# 1. Fast start.
w0=$(written vda)
t0=$(now)
scratchcrypt encrypt /dev/vda --name f --mount /mnt/f --fast-start --json >/run/f.json ||
    fail "encrypt --fast-start failed"
t1=$(now)
w1=$(written vda)
# A writer at full speed while the file system grows: 1 GiB of zeros, twice the initial size.
gdd if=/dev/zero of=/mnt/f/fill bs=1M count=1024 conv=fsync status=none 2>/run/fill.err &
fill=$!
min_free=999999999
scratchcrypt grow f --json >/run/grow.json 2>/run/grow.err &
grower=$!
while kill -0 $grower 2>/dev/null; do
    free=$(df -k /mnt/f | awk 'NR == 2 {print $4}')
    [ -n "$free" ] && [ "$free" -lt "$min_free" ] && min_free=$free
    sleep 0.2
done
wait $grower || fail "grow failed: $(cat /run/grow.err)"
t2=$(now)
w2=$(written vda)
wait $fill
fill_rc=$?
[ $fill_rc -eq 0 ] || log "writer during growth failed: $(cat /run/fill.err)"
st=$(scratchcrypt status f --json)
echo "$st" >/run/fst.json
grow_s=$(json_num seconds /run/grow.json)
echo "BENCH recipe=fast-start ready_s=$(awk -v a=$t0 -v b=$t1 'BEGIN{print b-a}') grow_s=$(awk -v a=$t1 -v b=$t2 'BEGIN{print b-a}') grow_call_s=$grow_s written_at_ready=$((w1 - w0)) written_after_growth=$((w2 - w0)) fs_bytes=$(json_num fs_bytes /run/fst.json) target_bytes=$(json_num target_bytes /run/fst.json) writer_rc=$fill_rc min_free_kib=$min_free"
umount /mnt/f
scratchcrypt cleanup f >/dev/null || fail "cleanup f failed"

# 2. Full format, same size, fresh disk.
w0=$(written vdb)
t0=$(now)
scratchcrypt encrypt /dev/vdb --name g --mount /mnt/g --json >/run/g.json || fail "full encrypt failed"
t1=$(now)
w1=$(written vdb)
zeroed=$(json_num zeroed /run/g.json)
zero_s=$(sed -n '/"step": "zero_ranges"/,/}/p' /run/g.json | sed -n 's/.*"seconds": *\([0-9.]*\).*/\1/p')
echo "BENCH recipe=full ready_s=$(awk -v a=$t0 -v b=$t1 'BEGIN{print b-a}') written_at_ready=$((w1 - w0)) zeroed=$zeroed zero_step_s=$zero_s"
umount /mnt/g
scratchcrypt cleanup g >/dev/null || fail "cleanup g failed"
echo "BENCH recipe=kernel kernel_errors=$(kmsg_errors | wc -l)"
pass
