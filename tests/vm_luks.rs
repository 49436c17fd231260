//! LUKS2 format and device-mapper activation under a real kernel: each test boots a qemu TCG
//! guest that runs the `luks_activate` example against a fresh
//! virtio disk and checks the result with cryptsetup and dmsetup as oracles
//! (tests/vm/guest/luks_*.sh). The host kernel has no device-mapper, so this is the only place
//! the real format, tables, keyring and removal run.
//!
//! Each guest boots through the shared harness (`tests/vm/run.sh`, via `tests/vmharness`), which
//! installs the example as `/usr/local/bin/scratchcrypt`. A missing qemu skips or fails by the
//! one rule of `tests/support/skip.rs` (`SCRATCHCRYPT_REQUIRE_PRIVILEGED=1` fails).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

mod vmharness;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Boot `guest` with the luks_activate example on a disk of `size` and assert PASS.
fn run_guest(test: &str, guest: &str, size: &str) {
    if !vmharness::vm_possible(test) {
        return;
    }
    let label = guest.trim_end_matches(".sh");
    vmharness::run_scenario(
        test,
        guest,
        label,
        size,
        &vmharness::build_example("luks_activate"),
    );
}

/// Format + activate; luksDump shows LUKS2, no keyslot, hmac(sha256), 4096-byte sectors and the
/// no-journal flag; cryptsetup status sees both layers; cryptsetup close removes them.
#[test]
fn vm_luks_format_and_activate() {
    run_guest(
        "vm_luks_format_and_activate",
        "luks_format_activate.sh",
        "256M",
    );
}

/// The tables we load equal, names and key aside, those `cryptsetup open` loads.
#[test]
fn vm_luks_tables_equal_cryptsetups() {
    run_guest(
        "vm_luks_tables_equal_cryptsetups",
        "luks_tables_equal.sh",
        "256M",
    );
}

/// Data written through our mapping reads back identical through cryptsetup's; busy, taken,
/// missing, nonexistent, non-block and held devices fail with the right exit status.
#[test]
fn vm_luks_data_survives_reopen_and_bad_input_is_refused() {
    run_guest(
        "vm_luks_data_survives_reopen_and_bad_input_is_refused",
        "luks_reopen_data.sh",
        "256M",
    );
}

/// Without dm-integrity, then without dm-crypt, the error names the missing target.
#[test]
fn vm_luks_missing_targets_are_named() {
    run_guest(
        "vm_luks_missing_targets_are_named",
        "luks_missing_targets.sh",
        "256M",
    );
}

/// A device below the minimum size is refused before anything is written.
#[test]
fn vm_luks_too_small_device_is_refused() {
    run_guest(
        "vm_luks_too_small_device_is_refused",
        "luks_too_small.sh",
        "8M",
    );
}

/// The integrity journal laid out at format is one section (132 KiB, `journal_sectors:264`), and
/// stock cryptsetup handles such a header: luksDump, status, `open --integrity-no-journal`
/// (mode D) and a journaled open (mode J); data crosses between the modes intact.
#[test]
fn vm_luks_minimal_journal_opens_with_and_without_journal() {
    run_guest(
        "vm_luks_minimal_journal_opens_with_and_without_journal",
        "luks_journal.sh",
        "256M",
    );
}

/// `scratchcrypt encrypt --json` on 1 GiB: the report's `written` categories add up, within
/// 2 %, to what `/sys/block/vda/stat` counted; the kernel's superblock has one journal section
/// and at most 1 MiB of integrity metadata was written at format.
#[test]
fn vm_luks_written_bytes_add_up() {
    let test = "vm_luks_written_bytes_add_up";
    if !vmharness::vm_possible(test) {
        return;
    }
    vmharness::run_scenario(
        test,
        "luks_bytes_add_up.sh",
        "luks_bytes_add_up",
        "1G",
        Path::new(env!("CARGO_BIN_EXE_scratchcrypt")),
    );
}

/// The guest scripts exist where the tests expect them (a renamed script must fail loudly).
#[test]
fn guest_scripts_exist() {
    for g in [
        "luks_format_activate.sh",
        "luks_tables_equal.sh",
        "luks_reopen_data.sh",
        "luks_missing_targets.sh",
        "luks_too_small.sh",
        "luks_journal.sh",
        "luks_bytes_add_up.sh",
    ] {
        assert!(
            Path::new(&root().join("tests/vm/guest").join(g)).is_file(),
            "{g}"
        );
    }
}
