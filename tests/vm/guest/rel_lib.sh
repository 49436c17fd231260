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

# expect CODE PATTERN LABEL UNTOUCHED -- command...: run, check the exit status, that stderr is
# one line containing PATTERN, that nothing is left behind, and — when UNTOUCHED is a path — that
# the first MiB of that path (the device or file the command names, marked with `mark` before)
# still holds the marker. UNTOUCHED `no` or `-`: nothing compared. Prints a MATRIX line for
# docs/RELIABILITY.md ("yes (PATH)" for a compared path).
expect() {
    code=$1 pat=$2 label=$3 untouched=$4
    shift 5
    "$@" >/run/out 2>/run/err
    rc=$?
    msg=$(cat /run/err)
    shown=$untouched
    case $untouched in /*) shown="yes ($untouched)" ;; esac
    echo "MATRIX|$label|$*|$rc|$msg|$shown"
    [ "$rc" = "$code" ] || fail "$label: exit $rc, expected $code: $msg"
    grep -q -- "$pat" /run/err || fail "$label: message lacks '$pat': $msg"
    [ "$(wc -l </run/err)" -le 1 ] || fail "$label: more than one line on stderr: $msg"
    no_leftovers "$label"
    case $untouched in
    /*) first_mib "$untouched" | cmp -s - /run/marker ||
            fail "$label: $untouched was written to (its first MiB is not the marker)" ;;
    yes) fail "$label: 'yes' names nothing to compare; give the path" ;;
    esac
}

# The first MiB of PATH: O_DIRECT for a block device (past the page cache), plain for a file.
first_mib() { # PATH
    if [ -b "$1" ]; then
        gdd if="$1" bs=1M count=1 iflag=direct status=none
    else
        gdd if="$1" bs=1M count=1 status=none
    fi
}

# Put a random marker in the first MiB of DEV (to prove refusals leave the device untouched).
mark() { # DEV
    [ -e /run/marker ] || head -c 1048576 /dev/urandom >/run/marker
    if [ -b "$1" ]; then
        gdd if=/run/marker of="$1" bs=1M count=1 oflag=direct status=none || fail "cannot mark $1"
    else
        gdd if=/run/marker of="$1" bs=1M count=1 conv=notrunc status=none || fail "cannot mark $1"
    fi
    first_mib "$1" | cmp -s - /run/marker || fail "the marker on $1 does not read back"
}
