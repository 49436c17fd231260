#!/usr/bin/env bash
# Run every test of scratchcrypt: formatting, lints, unit tests, root tests on loop devices and
# FUSE, and the qemu VM scenarios (which download and cache a Debian kernel under target/vm).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
cargo test --all-targets
cargo test --doc
