#!/usr/bin/env bash
# Mutation score of the code that decides what gets written to the device: the format plan
# (format/plan.rs and the zero-range collection in format/mod.rs), the read-ahead margins
# (pipeline/margin.rs), the sparse copy and zeroing (sparse/), and the dm tables (dm_table.rs),
# against the unprivileged tests (no FUSE, no VM). Not part of CI: one build and test run per
# mutant, about 30-60 s each on two cores, after a first full build of a copy (~5 min). Results
# in mutants.out/ (caught, missed, timeout, unviable); docs/MUTATION.md records the last score and
# what was done about the survivors.
#
# Usage: [MUTANTS_TESTS="--lib --test loop_sparse"] scripts/mutants.sh [cargo-mutants options
#        instead of the default file set, e.g. --file src/pipeline/margin.rs]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null && ! [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo-mutants ]]; then
    cargo install --locked cargo-mutants
fi

files=(
    src/pipeline/margin.rs
    src/format/plan.rs
    src/sparse/zero.rs
    src/sparse/copy.rs
    src/extent.rs
    src/dm_table.rs
)
args=()
if (($#)); then
    args=("$@")
else
    for f in "${files[@]}"; do args+=(--file "$f"); done
    # Of format.rs, only the function that lists the zero ranges.
    args+=(--file src/format.rs
        --re 'margin\.rs|plan\.rs|zero\.rs|copy\.rs|extent\.rs|dm_table\.rs|collect_zero_ranges')
fi
# The unprivileged tests: unit tests, the image checks against mke2fs and dumpe2fs, the CLI.
# The FUSE strict-device tests (tests/pipeline_strict.rs, ~15 s) catch more; add them with
# `-- --lib --test pipeline_strict` for a slower, stronger run. The VM tests are too slow.
# A mutant can make a test build a huge image: keep the tests' temp files on a size-capped tmpfs
# (a mutant once left 24 GB in /dev/shm and exhausted the machine's memory).
cap=$(mktemp -d)
mount -t tmpfs -o size=4g tmpfs "$cap" 2>/dev/null || echo "mutants: cannot mount a capped tmpfs; using $cap" >&2
trap 'umount "$cap" 2>/dev/null; rmdir "$cap"' EXIT
export TMPDIR=$cap
# cargo-mutants follows `mod` statements and ignores `cfg`: lib.rs declares each internal module
# twice (public with test-support, private without), so every mutant would be listed, run and
# counted twice. Mutate a copy of the tracked files whose lib.rs declares each module once,
# public: the tests enable test-support anyway (the dev-dependency on the crate itself).
tree=$cap/tree
mkdir -p "$tree"
git ls-files -z | xargs -0 cp --parents -t "$tree"
sed -i -e '/^#\[cfg(not(feature = "test-support"))\]$/{N;/\nmod [a-z_]*;$/d}' \
    -e '/^#\[cfg(feature = "test-support")\]$/{N;s/^[^\n]*\n\(pub mod [a-z_]*;\)$/\1/}' \
    "$tree/src/lib.rs"
if grep -q 'cfg(not(feature = "test-support"))' "$tree/src/lib.rs"; then
    echo "mutants: could not turn lib.rs's module pairs into single declarations" >&2
    exit 1
fi
# MUTANTS_TESTS replaces the test selection, e.g. "--lib --test loop_sparse" for sparse/;
# MUTANTS_TIMEOUT (seconds, default 300) bounds a mutant that makes a test loop for ever.
read -r -a tests <<<"${MUTANTS_TESTS:---lib --test format --test plan_exact --test cli}"
cargo mutants --dir "$tree" --output . --no-shuffle --timeout "${MUTANTS_TIMEOUT:-300}" "${args[@]}" -- "${tests[@]}"
