#!/usr/bin/env bash
# Who owns every byte written before the disk is ready (issue 27, docs/BENCHMARKS.md "Byte
# owners"): one qemu guest; for each binary given (label=path; default: this tree's release
# build as "after"), the full format and the fast start at each size, each on a fresh disk.
# Prints the console's OWNERS lines: what the disk counted (`seen`) and the report's `written`
# object (LUKS header area, integrity metadata, zeroed bytes by owner, image data, tags).
# Usage: scripts/vm-bench-bytes.sh [label=binary...]
# Environment: BYTES_SIZES (default "4G 32G"), BYTES_MODES (default "full fast").
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${BYTES_SIZES:-4G 32G}
modes=${BYTES_MODES:-full fast}
bins=("$@")
if ((${#bins[@]} == 0)); then
    cargo build --quiet --release --bin scratchcrypt
    bins=("after=${CARGO_TARGET_DIR:-target}/release/scratchcrypt")
fi
work=$(mktemp -d)
files=() specs=""
for spec in "${bins[@]}"; do
    label=${spec%%=*} path=${spec#*=}
    cp "$path" "$work/sc-$label"
    files+=(--file "$work/sc-$label")
    specs="$specs $label=/guest/sc-$label"
done
n=$(($(wc -w <<<"$modes") * $(wc -w <<<"$sizes") * ${#bins[@]}))
cat >"$work/bench_bytes.conf" <<CONF
BINS="$specs"
MODES="$modes"
SIZES="$sizes"
CONF
# The disks take the sizes in turn, in the order the guest uses them (bins × modes × sizes).
disk_sizes=$(tr ' ' ',' <<<"$sizes")
bash tests/vm/run.sh --script tests/vm/guest/bench_bytes.sh --binary "${bins[0]#*=}" \
    --disk-size "$disk_sizes" --disks "$n" --name bench-bytes --timeout 3600 --workdir "$work" \
    --file "$work/bench_bytes.conf" "${files[@]}" | tee "$work/console.txt" | grep -a '^OWNERS\|SCRATCHCRYPT-VM'
