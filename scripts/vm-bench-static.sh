#!/usr/bin/env bash
# VM comparison of the dynamic build with the static builds (kernel and openssl crypto backend)
# in one boot (docs/BENCHMARKS.md, "Static build"): tests/vm/guest/bench_static.sh encrypts one
# fresh disk per run, rounds interleaved, and prints the medians.
# Usage: scripts/vm-bench-static.sh [SIZE]   (default 1G; BENCH_ROUNDS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1G}
rounds=${BENCH_ROUNDS:-3}
bash scripts/deps.sh
cargo build --quiet --release --bin scratchcrypt
dynamic=${CARGO_TARGET_DIR:-target}/release/scratchcrypt
kernel=$(bash scripts/build-static.sh --crypto kernel)
openssl=$(bash scripts/build-static.sh --crypto openssl)
# The kernel build is the one a release ships: leave the cargo target dir on it.
kernel=$(bash scripts/build-static.sh --crypto kernel)
for b in "$dynamic" "$kernel" "$openssl"; do
    echo "size $(basename "$b"): $(stat -c %s "$b") bytes$([[ $b == "$dynamic" ]] && echo " (unstripped)")"
done
sdyn=$(mktemp)
trap 'rm -f "$sdyn"' EXIT
strip -o "$sdyn" "$dynamic"
echo "size dynamic stripped: $(stat -c %s "$sdyn") bytes"
exec bash tests/vm/run.sh --script tests/vm/guest/bench_static.sh --name bench-static \
    --binary "$dynamic" --file "$kernel" --file "$openssl" \
    --disks $((rounds * 3)) --disk-size "$size" --timeout 1200
