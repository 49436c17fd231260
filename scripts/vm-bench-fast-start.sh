#!/usr/bin/env bash
# Fast start against the full format (docs/BENCHMARKS.md, "Fast start"): one qemu guest per
# disk size, three fresh sparse disks each. Prints the guest's BENCH lines and a table.
# Usage: scripts/vm-bench-fast-start.sh [SIZE...]   (default: 4G 32G)
# FAST_START_ARGS="--initial-size 128M" passes extra options to the fast-start runs.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
((${#sizes[@]})) || sizes=(4G 32G)
bash scripts/deps.sh
cargo build --quiet --release --bin scratchcrypt
bin=${CARGO_TARGET_DIR:-target}/release/scratchcrypt
for size in "${sizes[@]}"; do
    work=$(mktemp -d)
    echo "FAST_ARGS=\"${FAST_START_ARGS:-}\"" >"$work/fast.conf"
    bash tests/vm/run.sh --script tests/vm/guest/bench_fast_start.sh --binary "$bin" \
        --disk-size "$size" --disks 3 --name "bench-fast-$size" --timeout 3600 --workdir "$work" \
        --file "$work/fast.conf" \
        >"$work/console.txt"
    echo "### $size"
    grep '^BENCH ' "$work/console.txt"
    grep -q 'SCRATCHCRYPT-VM: PASS' "$work/console.txt" || { echo "vm-bench-fast-start: $size failed" >&2; exit 1; }
done
