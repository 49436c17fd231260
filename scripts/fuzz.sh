#!/usr/bin/env bash
# Fuzz the parsers of what the untrusted disk hands back (docs/RELIABILITY.md, threat model):
# the dm-integrity superblock, the ext4 superblock of the online growth, the data guard's
# verdict. Not part of `cargo test` (the tests stay deterministic): run by hand or in a nightly job.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# Needs the nightly toolchain (rustup) and cargo-fuzz, which it installs if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
bash scripts/deps.sh
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
for target in integrity_superblock ext4_geometry blkid_verdict; do
    echo "fuzz: $target for ${secs}s" >&2
    cargo +nightly fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=2048
done
