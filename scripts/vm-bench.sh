#!/usr/bin/env bash
# VM comparison of scratchcrypt with the recipes people use today (docs/BENCHMARKS.md).
# One qemu guest per disk size, four fresh sparse disks per guest (one per recipe), each recipe
# followed by the integrity stress. Prints the console, then a markdown table.
# Usage: scripts/vm-bench.sh [SIZE...]   (default: 4G 16G). Slow: the full wipe runs at the
# emulated ~15-20 MB/s (4 GiB ≈ 4-5 min, 16 GiB ≈ 15-20 min).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
((${#sizes[@]})) || sizes=(4G 16G)

bash scripts/deps.sh
cargo build --quiet --release --bin scratchcrypt
bin=${CARGO_TARGET_DIR:-target}/release/scratchcrypt

failed=() # verdict (issue 17): a guest FAIL (a recipe's stress verdict differs) fails the script
for size in "${sizes[@]}"; do
    work=$(mktemp -d)
    echo "vm-bench: $size, four disks, workdir $work" >&2
    rc=0
    bash tests/vm/run.sh --script tests/vm/guest/bench.sh --binary "$bin" --disk-size "$size" \
        --disks 4 --name "bench-$size" --timeout 5400 --keep --workdir "$work" |
        tee "$work/console.txt" || rc=$?
    ((rc == 0)) || failed+=("$size (tests/vm/run.sh exit $rc)")
    echo
    echo "### $size disks"
    echo
    echo "| recipe | ready | time to mountable fs (s) | written, guest view | allocated in the disk file (host) | peak RSS | stress | kernel integrity errors (prep / total) |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    i=0
    grep '^BENCH ' "$work/console.txt" | while read -r _ fields; do
        declare -A f=()
        for kv in $fields; do f[${kv%%=*}]=${kv#*=}; done
        alloc=$(($(stat -c '%b * %B' "$work/disk$i.img")))
        awk -v r="${f[recipe]}" -v ok="${f[ready]}" -v s="${f[seconds]}" \
            -v w="${f[guest_written_bytes]}" -v a="$alloc" -v k="${f[peak_rss_kib]}" \
            -v st="${f[stress]}" -v pe="${f[prep_errors]}" -v ke="${f[kernel_errors]}" \
            'BEGIN { printf "| %s | %s | %s | %.1f MiB | %.1f MiB | %.1f MiB | %s | %s / %s |\n",
                     r, ok, s, w / 1048576, a / 1048576, k / 1024, st, pe, ke }'
        i=$((i + 1))
    done
    grep '^BENCH-REASON ' "$work/console.txt" | sed 's/^BENCH-REASON /stress failure: /' || true
    grep -A1 '^BENCH recipe=scratchcrypt' "$work/console.txt" | tail -n 1 | sed 's/^/scratchcrypt bytes by category: /'
    rm -rf "$work"
done
if ((${#failed[@]})); then # verdict (issue 17)
    echo "vm-bench: FAILED: ${failed[*]}; see the SCRATCHCRYPT-VM: FAIL line above" >&2
    exit 1
fi
