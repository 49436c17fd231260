#!/usr/bin/env bash
# VM comparison of scratchcrypt with the recipes people use today (docs/BENCHMARKS.md).
# One qemu guest per disk size; every run of every recipe gets its own fresh sparse disk.
# Round 1 runs every recipe followed by the integrity stress; later rounds repeat the recipes
# (except BENCH_ONCE) without the stress, interleaved, so times can be given as medians and the
# ratios are taken within each round. Prints the console, then markdown tables.
# Usage: scripts/vm-bench.sh [SIZE...]   (default: 4G 16G)
#   A SIZE may be a comma-separated list that the disks take in turn (tests/vm/run.sh --disk-size):
#   BENCH_RECIPES="scratchcrypt_fast hcsshim scratchcrypt_fast_b" BENCH_ONCE= scripts/vm-bench.sh 4G,4G,32G
#   puts the fast start at 4 and 32 GiB and hcsshim at 4 GiB into the same rounds of one boot.
# Environment:
#   BENCH_ROUNDS         rounds per size (default 3)
#   BENCH_RECIPES        recipes in run order (default: all, see tests/vm/guest/bench.sh)
#   BENCH_ONCE           recipes run in round 1 only (default: full_wipe)
#   BENCH_STRESS_ROUNDS  rounds whose runs get the stress (default 1)
#   BENCH_PEAK           0: do not sample peak memory (the sampler's processes take guest CPU
#                        from the recipe being timed; default 1)
# Slow: the full wipe runs at the emulated ~15-20 MB/s (4 GiB ≈ 8 min, 16 GiB ≈ 30 min); with the
# default three rounds a 4 GiB run took 33 minutes on a busy machine, 16 GiB 26 minutes without
# the full wipe (which adds about 30).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
((${#sizes[@]})) || sizes=(4G 16G)
rounds=${BENCH_ROUNDS:-3}
recipes=${BENCH_RECIPES:-scratchcrypt scratchcrypt_fast scratchcrypt_nojournal full_wipe coco coco_tuned hcsshim original}
once=${BENCH_ONCE:-full_wipe}
stress_rounds=${BENCH_STRESS_ROUNDS:-1}

bash scripts/deps.sh
cargo build --quiet --release --bin scratchcrypt
bin=${CARGO_TARGET_DIR:-target}/release/scratchcrypt

n_all=0 n_repeat=0
for r in $recipes; do
    n_all=$((n_all + 1))
    [[ " $once " == *" $r "* ]] || n_repeat=$((n_repeat + 1))
done
disks=$((n_all + (rounds - 1) * n_repeat))
((disks <= 26)) || { echo "vm-bench: $disks disks needed, at most 26 (vda..vdz)" >&2; exit 2; }

failed=() # verdict (issue 17): a guest FAIL (a recipe's stress verdict differs) fails the script
for size in "${sizes[@]}"; do
    work=$(mktemp -d)
    cat >"$work/bench.conf" <<EOF
RECIPES="$recipes"
ROUNDS=$rounds
ONCE="$once"
STRESS_ROUNDS=$stress_rounds
PEAK=${BENCH_PEAK:-1}
EOF
    echo "vm-bench: $size, $disks disks ($rounds rounds of: $recipes; once: $once), workdir $work" >&2
    bash tests/vm/run.sh --script tests/vm/guest/bench.sh --binary "$bin" --disk-size "$size" \
        --disks "$disks" --name "bench-$size" --timeout 10800 --keep --workdir "$work" --xfs \
        --file "$work/bench.conf" | tee "$work/console.txt" || rc=$?
    ((${rc:-0} == 0)) || failed+=("$size (tests/vm/run.sh exit $rc)")
    rc=0
    # Blocks allocated in each disk file on the host (disk<i>.img is /dev/vd<a+i>).
    for ((i = 0; i < disks; i++)); do
        letter=$(printf "\\$(printf '%03o' $((97 + i)))")
        echo "ALLOC disk=vd$letter bytes=$(($(stat -c '%b * %B' "$work/disk$i.img")))"
    done >"$work/alloc.txt"
    echo
    echo "### $size disks"
    echo
    cat "$work/alloc.txt" "$work/console.txt" | tr -d '\r' | awk -v order="$recipes" '
        function kv(line, a,   n, i, f, parts) {
            delete a
            n = split(line, parts, " ")
            for (i = 2; i <= n; i++) { f = index(parts[i], "="); if (f) a[substr(parts[i], 1, f - 1)] = substr(parts[i], f + 1) }
        }
        function sort(v, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t } }
        function median(v, n) { sort(v, n); return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
        function mib(b) { return sprintf("%.1f MiB", b / 1048576) }
        /^ALLOC / { kv($0, a); alloc[a["disk"]] = a["bytes"]; next }
        /^BENCH-REASON / { reasons = reasons "\nstress failure: " substr($0, 14); next }
        /^BENCH-BYTES / { kv($0, a); if (a["round"] == 1) bytes[a["recipe"]] = $4; next }
        /^BENCH / {
            kv($0, a); r = a["recipe"]; k = ++runs[r]
            secs[r, k] = a["seconds"] + 0; secs_round[r, a["round"]] = a["seconds"] + 0
            if (a["round"] > maxround) maxround = a["round"]
            if (a["ready"] != "yes") notready[r]++
            if (a["round"] == 1) {
                first[r] = a["ready"]; w[r] = a["guest_written_bytes"]; rss[r] = a["peak_rss_kib"]
                st[r] = a["stress"]; pe[r] = a["prep_errors"]; ke[r] = a["kernel_errors"]; disk[r] = a["disk"]
            }
            prep_all[r] += a["prep_errors"]
            if (a["report_written_bytes"] != "") {
                rep[r, k] = a["report_written_bytes"]; seen[r, k] = a["guest_written_bytes"]
            }
            next
        }
        END {
            print "| recipe | ready | time to mountable fs, median (range, runs) | written, guest view | allocated in the disk file (host, after stress) | peak RSS | stress | kernel integrity errors (prep / total, round 1) | prep errors, all rounds |"
            print "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
            n = split(order, names, " ")
            for (i = 1; i <= n; i++) {
                r = names[i]; if (!(r in runs)) continue
                m = runs[r]; for (k = 1; k <= m; k++) v[k] = secs[r, k]
                med = median(v, m)
                range = m > 1 ? sprintf(" (%.2f–%.2f, %d)", v[1], v[m], m) : " (1 run)"
                printf "| %s | %s%s | %.2f s%s | %s | %s | %.1f MiB | %s | %s / %s | %d |\n", r, first[r],
                    notready[r] ? " (" notready[r] " not ready)" : "", med, range, mib(w[r]),
                    mib(alloc[disk[r]]), rss[r] / 1024, st[r], pe[r], ke[r], prep_all[r]
            }
            print ""
            print "Ratios of scratchcrypt times within each round (median, range over rounds):"
            split("coco_tuned coco hcsshim full_wipe", peers, " ")
            for (p = 1; p <= 4; p++) {
                q = peers[p]; c = 0
                for (rd = 1; rd <= maxround; rd++)
                    if (("scratchcrypt", rd) in secs_round && (q, rd) in secs_round && secs_round[q, rd] > 0)
                        v[++c] = secs_round["scratchcrypt", rd] / secs_round[q, rd]
                if (c) printf "- scratchcrypt / %s: %.2f× (%.2f–%.2f, %d rounds)\n", q, median(v, c), v[1], v[c], c
            }
            n_pairs = split("scratchcrypt_fast/hcsshim scratchcrypt_fast_nojournal/hcsshim scratchcrypt_fast_256m/hcsshim scratchcrypt_fast_128m/hcsshim scratchcrypt_fast/scratchcrypt scratchcrypt_fast_b/scratchcrypt_fast", pairs, " ")
            for (p = 1; p <= n_pairs; p++) {
                split(pairs[p], ab, "/"); c = 0
                for (rd = 1; rd <= maxround; rd++)
                    if ((ab[1], rd) in secs_round && (ab[2], rd) in secs_round && secs_round[ab[2], rd] > 0)
                        v[++c] = secs_round[ab[1], rd] / secs_round[ab[2], rd]
                if (c) { sort(v, c); printf "- %s / %s: %.2f× (%.2f–%.2f, %d rounds)\n", ab[1], ab[2], median(v, c), v[1], v[c], c }
            }
            print ""
            print "scratchcrypt report vs. the disk (sum of `written` categories / sectors written in /sys/block/<dev>/stat):"
            for (i = 1; i <= n; i++) {
                r = names[i]; line = ""
                for (k = 1; k <= runs[r]; k++) if ((r, k) in rep && seen[r, k] > 0)
                    line = line sprintf(" %d/%d = %.4f;", rep[r, k], seen[r, k], rep[r, k] / seen[r, k])
                if (line != "") print "- " r ":" line
            }
            for (r in bytes) print "- " r " categories (round 1): " bytes[r]
            if (reasons != "") print reasons
        }'
    rm -rf "$work"
done
if ((${#failed[@]})); then # verdict (issue 17)
    echo "vm-bench: FAILED: ${failed[*]}; see the SCRATCHCRYPT-VM: FAIL line above" >&2
    exit 1
fi
