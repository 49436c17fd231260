//! Reliability under a real kernel (qemu guest, see `tests/vm.rs`): every bad input and every
//! injected failure gets a one-line error naming the step with the right exit class and leaves
//! no mapping and no temp dir; concurrent runs, a SIGKILL in the middle, and key hygiene.
//! The guest scripts print `MATRIX|...` lines, the results recorded in docs/RELIABILITY.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

mod vmharness;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_scratchcrypt"))
}

/// Bad inputs (missing, regular file, char device, too small, invalid or taken name, mounted,
/// held by dm), a partition beside a mounted one (allowed), temp dirs that cannot hold the
/// image (ramfs, full, read-only), a write error while zeroing, and missing dm targets.
#[test]
fn vm_reliability_bad_input_and_injected_failures() {
    vmharness::run_scenario_on(
        "vm_reliability_bad_input_and_injected_failures",
        "rel_matrix.sh",
        "rel-matrix",
        "256M",
        2,
        binary(),
    );
}

/// Two devices at once both succeed; the same device twice: one wins, the other exits busy
/// and leaves nothing; a SIGKILL mid-run is undone by `cleanup`; no key reaches a table, the
/// keyring after loading (observed in /proc/keys while `encrypt` lives, with a positive
/// control), or any output.
#[test]
fn vm_reliability_concurrency_kill_and_key_hygiene() {
    if !vmharness::vm_possible("vm_reliability_concurrency_kill_and_key_hygiene") {
        return;
    }
    // The positive control of the /proc/keys check: a live logon key of another process.
    let probe = vmharness::build_example("keyring_probe");
    let probe = probe.to_str().expect("a UTF-8 target path");
    vmharness::run_scenario_args(
        "vm_reliability_concurrency_kill_and_key_hygiene",
        "rel_concurrency.sh",
        "rel-concurrency",
        "1G",
        2,
        binary(),
        &["--file", probe],
    );
}

/// Load: four disks encrypted, mounted, written and cleaned up in parallel for ten rounds (one
/// fast start among them); nothing leaks: dm devices, keys, temp dirs, mounts, growth records,
/// growers.
#[test]
fn vm_reliability_load_leaks_nothing() {
    vmharness::run_scenario_on(
        "vm_reliability_load_leaks_nothing",
        "rel_load.sh",
        "rel-load",
        "256M",
        4,
        binary(),
    );
}

/// The disk goes away: the host removes the source (QMP `device_del`) while `encrypt` writes to
/// it; the run fails with an I/O error instead of hanging, and nothing is left afterwards.
#[test]
fn vm_reliability_disk_removed_mid_run() {
    vmharness::run_scenario_args(
        "vm_reliability_disk_removed_mid_run",
        "rel_unplug.sh",
        "rel-unplug",
        "2G",
        2,
        binary(),
        &["--hotplug"],
    );
}
