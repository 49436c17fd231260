# Benchmark: encrypt time of the dynamic and the static builds in one boot. The dynamic binary is
# /usr/local/bin/scratchcrypt (run.sh --binary), the static ones /guest/scratchcrypt-<backend>
# (run.sh --file). Rounds are interleaved, one fresh disk per encrypt (rounds = disks /
# binaries), in the order the binaries are listed; each encrypt is timed from /proc/uptime, then
# the mapping is removed. Prints `BENCH <binary> <round> <seconds> format_header <seconds>` (the LUKS2 format step of
# the JSON report) and one median line per binary.
. /guest/lib.sh
bins="/usr/local/bin/scratchcrypt $(ls /guest/scratchcrypt-* 2>/dev/null | tr '\n' ' ')"
ROUNDS=$(($(ls /dev/vd? | wc -l) / $(echo $bins | wc -w))) # as many as the disks allow
kmsg_start
disks=$(ls /dev/vd? | tr '\n' ' ')
set -- $disks
r=1
while [ $r -le "$ROUNDS" ]; do
    for b in $bins; do
        [ $# -gt 0 ] || fail "not enough disks for $ROUNDS rounds"
        dev=$1
        shift
        t0=$(cut -d' ' -f1 /proc/uptime)
        "$b" encrypt "$dev" --name bench --json >/run/report.json || fail "$b encrypt $dev failed"
        t1=$(cut -d' ' -f1 /proc/uptime)
        # The LUKS2 format alone (libcryptsetup and its crypto backend), from the JSON report.
        fmt=$(tr -d ' \n' </run/report.json | grep -o '"step":"format_header","seconds":[0-9.e-]*' | cut -d: -f3)
        "$b" cleanup bench || fail "$b cleanup failed"
        echo "BENCH $(basename "$b") $r $(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}') format_header $fmt" | tee -a /run/bench
    done
    r=$((r + 1))
done
for b in $bins; do
    n=$(basename "$b")
    med=$(awk -v n="$n" '$2 == n {print $4}' /run/bench | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    fmed=$(awk -v n="$n" '$2 == n {print $6}' /run/bench | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    echo "BENCH-MEDIAN $n encrypt $med format_header $fmed"
done
kmsg_require_clean "encrypt and cleanup of every binary"
pass
