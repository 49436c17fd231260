#!/usr/bin/env bash
# Run every test of scratchcrypt: formatting, lints, unit tests, root tests on loop devices and
# FUSE, and the qemu VM scenarios (which download and cache a Debian kernel under target/vm).
#
# SCRATCHCRYPT_REQUIRE_PRIVILEGED=1: a test that cannot run here (not root, no FUSE, no loop
# devices, no qemu, no e2fsprogs, no keyring) fails instead of skipping (tests/support/skip.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

export SCRATCHCRYPT_REQUIRE_PRIVILEGED=1
skips=${CARGO_TARGET_DIR:-target}/scratchcrypt-skipped-tests.txt

bash scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# tests/fuse_grow.rs is `test = false` (it runs inside the qemu guest, vm_fuse_grow_in_guest):
# --all-targets leaves it out, and naming it beside --all-targets is ignored, so a second call.
cargo clippy --test fuse_grow -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
mkdir -p "$(dirname "$skips")"
: >"$skips"
cargo test --all-targets
cargo test --doc
# Belt and braces: under the variable no test may have skipped.
n=$(wc -l <"$skips")
echo "test-all: $n tests skipped"
if ((n != 0)); then
    cat "$skips"
    exit 1
fi
