# Helpers for the reliability scenarios (sourced after lib.sh).

# Device-mapper devices the scenarios create themselves; everything else must be gone after a
# refused or failed run.
OURS_RE='^(flaky|taken|hold|tiny|victim)$'

# No mapping of scratchcrypt's and no private temp dir may be left.
no_leftovers() { # LABEL
    left=$(dmsetup ls 2>/dev/null | awk '{print $1}' | grep -v -E "$OURS_RE" | grep -v '^No$')
    [ -z "$left" ] || fail "$1: mappings left behind: $left"
    for d in /tmp /rfs /small /rotmp; do
        [ -d "$d" ] || continue
        stale=$(ls -d "$d"/scratchcrypt-* 2>/dev/null)
        [ -z "$stale" ] || fail "$1: temp dirs left behind: $stale"
    done
}

# expect CODE PATTERN LABEL UNTOUCHED(yes|no|-) -- command...: run, check the exit status, that
# stderr is one line containing PATTERN, that nothing is left behind, and (yes) that the first
# MiB of /dev/vda still holds the marker. Prints a MATRIX line for docs/RELIABILITY.md.
expect() {
    code=$1 pat=$2 label=$3 untouched=$4
    shift 5
    "$@" >/run/out 2>/run/err
    rc=$?
    msg=$(cat /run/err)
    echo "MATRIX|$label|$*|$rc|$msg|$untouched"
    [ "$rc" = "$code" ] || fail "$label: exit $rc, expected $code: $msg"
    grep -q -- "$pat" /run/err || fail "$label: message lacks '$pat': $msg"
    [ "$(wc -l </run/err)" -le 1 ] || fail "$label: more than one line on stderr: $msg"
    no_leftovers "$label"
    if [ "$untouched" = yes ]; then
        gdd if=/dev/vda bs=1M count=1 iflag=direct status=none | cmp -s - /run/marker ||
            fail "$label: the refused device was written to"
    fi
}

# Put a random marker in the first MiB of DEV (to prove refusals leave the device untouched).
mark() { # DEV
    [ -e /run/marker ] || head -c 1048576 /dev/urandom >/run/marker
    gdd if=/run/marker of="$1" bs=1M count=1 oflag=direct status=none || fail "cannot mark $1"
}
