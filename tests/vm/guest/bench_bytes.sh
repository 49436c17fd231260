# Guest script of scripts/vm-bench-bytes.sh: who owns every byte written before the disk is ready.
# For each binary of /guest/bench_bytes.conf (BINS: "label=path ..."), each mode (MODES: full,
# fast) and each disk in turn (one fresh disk per run, in the order vda, vdb, ...), run
# `encrypt --json` (the fast start with --mount, as bench.sh times it), and print
# `OWNERS bin=L mode=M disk=vdX disk_bytes=N seen=B <the report's written object, flattened>`,
# where seen is what /sys/block/vdX/stat counted written during the encrypt.
. /guest/lib.sh
. /guest/bench_bytes.conf
written_sectors() { awk '{print $7}' "/sys/block/$1/stat"; }
kmsg_start
mkdir -p /mnt/b
i=0
for spec in $BINS; do
    label=${spec%%=*} bin=${spec#*=}
    for mode in $MODES; do
        for size in $SIZES; do
            disk=vd$(printf "\\$(printf '%03o' $((97 + i)))")
            i=$((i + 1))
            case $mode in
            full) set -- --json ;;
            fast) set -- --json --fast-start --mount /mnt/b ;;
            esac
            before=$(written_sectors $disk)
            "$bin" encrypt /dev/$disk --name b$i "$@" >/run/b.json 2>/dev/null || fail "$label $mode $disk: encrypt"
            after=$(written_sectors $disk)
            w=$(sed -n '/^  "written"/,/^  }/p' /run/b.json | tr -d ' \n')
            echo "OWNERS bin=$label mode=$mode disk=$disk disk_bytes=$(($(cat /sys/block/$disk/size) * 512)) seen=$(((after - before) * 512)) $w"
            "$bin" cleanup b$i --unmount >/dev/null 2>&1 || fail "$label $mode $disk: cleanup"
        done
    done
done
require_no_mapping
kmsg_require_clean "byte owners"
pass
