#!/usr/bin/env bash
# Build the Debian package of scratchcrypt with cargo-deb and print the .deb's path.
#
# Why a script: the man pages and shell completions are rendered by the freshly built binary
# (its hidden `generate` command, from the clap definitions) before cargo-deb packs them, and
# cargo-deb itself is installed here from crates.io when missing (pinned, --locked; cached in
# ~/.cargo/bin, so only a fresh machine builds it: about 2.5 minutes on 2 cores).
#
# Usage: scripts/build-deb.sh   (output: target/debian/scratchcrypt_<version>-1_<arch>.deb)
# Environment: CARGO_TARGET_DIR is honoured for the build; the assets go to target/deb-assets.
set -eEuo pipefail
# A command that fails under set -e names itself: the caller (vmharness::build_script) shows
# our stderr, and a silent exit once hid why a fresh machine failed (issue 23).
trap 'echo "build-deb: failed (status $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
repo=$PWD

CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
    echo "build-deb: installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
fi

target_dir=${CARGO_TARGET_DIR:-$repo/target}
cargo build --release --locked --bin scratchcrypt >&2
bin=$target_dir/release/scratchcrypt

# Paths named by [package.metadata.deb] assets in Cargo.toml.
assets=$repo/target/deb-assets
rm -rf "$assets"
mkdir -p "$assets"
"$bin" generate man "$assets/man"
"$bin" generate completions bash >"$assets/scratchcrypt.bash"
"$bin" generate completions zsh >"$assets/_scratchcrypt"
"$bin" generate completions fish >"$assets/scratchcrypt.fish"

out=$target_dir/debian
mkdir -p "$out"
# --no-build: built above, with the same profile; cargo-deb maps target/release/ to the target dir.
deb=$(cargo deb --no-build --locked --quiet --fast --output "$out" | tail -n 1)
[[ -f $deb ]] || { echo "build-deb: cargo deb gave no package ($deb)" >&2; exit 1; }
echo "$deb"
