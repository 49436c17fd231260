#!/usr/bin/env bash
# The ext4 journal's default size, by measurement (issue 27, docs/BENCHMARKS.md "Journal size").
# One qemu guest; every round runs every journal size in turn on its own disk (interleaved, so
# the rounds share the guest's load), with a metadata-heavy workload: WRITERS processes creating
# and fsyncing FILES small files each (tests/vm/guest/fsync_storm.c). Prints the console, then
# per journal size the median files/s, its range, and the ratio to mke2fs' default for the
# disk size (the first entry of JOURNAL_MIB). The default journal is the smallest within 5 % of
# that.
# Usage: scripts/vm-bench-journal.sh [SIZE]   (disk size, default 4G: mke2fs gives it 64 MiB)
# Environment:
#   JOURNAL_MIB     journal sizes in MiB, mke2fs' default first (default "64 32 16 8 4 0";
#                   0 is no journal at all)
#   JOURNAL_ROUNDS  rounds (default 3)
#   STORM_WRITERS   writers (default 4); STORM_FILES files per writer (default 1000: one run
#                   then takes about a minute under TCG; 4 × 3000 files took 176 s);
#   STORM_SIZE      bytes per file (default 4096)
#   SCRATCHCRYPT_BIN  a scratchcrypt binary to use instead of building the release one
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-4G}
journals=${JOURNAL_MIB:-64 32 16 8 4 0}
rounds=${JOURNAL_ROUNDS:-3}
bash scripts/deps.sh >/dev/null
if [[ -n ${SCRATCHCRYPT_BIN:-} ]]; then
    bin=$SCRATCHCRYPT_BIN # any build: the workload, not scratchcrypt, is timed
else
    cargo build --quiet --release --bin scratchcrypt
    bin=${CARGO_TARGET_DIR:-target}/release/scratchcrypt
fi
work=$(mktemp -d)
gcc -O2 -static -Wall -o "$work/fsync_storm" tests/vm/guest/fsync_storm.c
cat >"$work/bench_journal.conf" <<CONF
JOURNALS="$journals"
ROUNDS=$rounds
WRITERS=${STORM_WRITERS:-4}
FILES=${STORM_FILES:-1000}
SIZE=${STORM_SIZE:-4096}
CONF
n=$(wc -w <<<"$journals")
echo "vm-bench-journal: $size, journals (MiB) $journals, $rounds rounds, workdir $work" >&2
rc=0
bash tests/vm/run.sh --script tests/vm/guest/bench_journal.sh --binary "$bin" --disk-size "$size" \
    --disks "$n" --name bench-journal --timeout 10800 --workdir "$work" --keep \
    --file "$work/fsync_storm" --file "$work/bench_journal.conf" --file "$(command -v tune2fs)" |
    tee "$work/console.txt" || rc=$?
# Median and range of files/s per journal size, and the ratio of medians to the first size.
grep -o 'JOURNAL round=.*' "$work/console.txt" | tr -d '\r' | awk '
    { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      m = v["mib"]; if (!(m in n)) order[++k] = m
      r[m, ++n[m]] = v["files_per_second"]; w[m] += v["written"] }
    function median(m,   i, j, t, a) {
        for (i = 1; i <= n[m]; i++) a[i] = r[m, i]
        for (i = 1; i <= n[m]; i++) for (j = i + 1; j <= n[m]; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        lo[m] = a[1]; hi[m] = a[n[m]]
        return n[m] % 2 ? a[(n[m] + 1) / 2] : (a[n[m] / 2] + a[n[m] / 2 + 1]) / 2 }
    END {
        print "| journal (MiB) | files/s median (range) | vs " order[1] " MiB | MB written per run |"
        print "| --- | --- | --- | --- |"
        base = median(order[1])
        for (i = 1; i <= k; i++) { m = order[i]; med = median(m)
            printf "| %s | %.1f (%.1f–%.1f) | %.3f× | %.1f |\n", m, med, lo[m], hi[m], med / base, w[m] / n[m] / 1e6 } }'
exit "$rc"
