#!/usr/bin/env bash
# Run apt-get or apt-cache against a project-local apt configuration for one Debian release.
#
# Why: the project needs things from Debian's archive that the host's apt is not set up for —
# source packages (deb-src, for scripts/build-static.sh) and the kernels of other releases (the
# VM harness boots Debian 11's, 12's and 13's). Editing /etc/apt to get them made the test
# command depend on a machine's history: a development machine that had run it once passed, a
# fresh one failed (issue 23). So every such look-up goes through its own sources list, lists
# and cache under <target>/apt/<codename>/, and ignores the host's sources and pinning; /etc is
# never written. The host's apt.conf.d (proxies, validity checks) still applies, as it should.
#
# Usage: apt-local.sh CODENAME apt-get|apt-cache ARGS...
#   CODENAME  bullseye, bookworm or trixie (or any Debian codename whose key the host's
#             debian-archive-keyring has); its suites CODENAME, CODENAME-updates and
#             CODENAME-security, component main, types deb and deb-src.
#   The lists are fetched on first use and again when older than a day (or when
#   SCRATCHCRYPT_APT_REFRESH=1). The command runs with the local configuration; its output is
#   the command's, update's chatter goes to stderr.
# Environment: CARGO_TARGET_DIR (default <repo>/target) places the configuration.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(($# >= 2)) || { echo "apt-local: usage: apt-local.sh CODENAME apt-get|apt-cache ARGS..." >&2; exit 2; }
codename=$1 tool=$2
shift 2
[[ $codename =~ ^[a-z]+$ ]] || { echo "apt-local: bad codename '$codename'" >&2; exit 2; }
case $tool in
apt-get | apt-cache) ;;
*) echo "apt-local: the tool must be apt-get or apt-cache, not '$tool'" >&2; exit 2 ;;
esac

target=${CARGO_TARGET_DIR:-$repo/target}
mkdir -p "$target"
target=$(cd "$target" && pwd)
dir=$target/apt/$codename
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/sources.list.d" "$dir/preferences.d"

# Debian's archive moved old releases' security suites to the same name scheme
# (CODENAME-security) from bullseye on; older ones are not supported here.
cat >"$dir/sources.list.new" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $codename main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $codename main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $codename-updates main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $codename-updates main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security $codename-security main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security $codename-security main
EOF
if ! cmp -s "$dir/sources.list.new" "$dir/sources.list" 2>/dev/null; then
    mv "$dir/sources.list.new" "$dir/sources.list"
    rm -f "$dir/updated"
else
    rm -f "$dir/sources.list.new"
fi

opts=(
    -o "Dir::Etc::SourceList=$dir/sources.list"
    -o "Dir::Etc::SourceParts=$dir/sources.list.d"
    -o "Dir::Etc::Preferences=$dir/preferences"
    -o "Dir::Etc::PreferencesParts=$dir/preferences.d"
    -o "Dir::State::Lists=$dir/lists"
    -o "Dir::Cache=$dir/cache"
    -o "APT::Sandbox::User=root"
)

# One update at a time per release (several test binaries may start at once).
exec 8>"$dir/.lock"
flock 8
if [[ ${SCRATCHCRYPT_APT_REFRESH:-0} == 1 || ! -f $dir/updated ||
    -n $(find "$dir/updated" -mmin +1440 2>/dev/null) ]]; then
    echo "apt-local: updating the package lists of $codename under $dir" >&2
    if ! apt-get "${opts[@]}" update -qq >&2; then
        echo "apt-local: apt-get update failed for $codename (sources: $dir/sources.list)" >&2
        exit 1
    fi
    touch "$dir/updated"
fi
flock -u 8

exec "$tool" "${opts[@]}" "$@"
