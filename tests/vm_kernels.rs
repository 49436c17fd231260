//! The core VM scenarios on the other guest kernels users run (issue 25): Debian 11's Linux 5.10
//! and Debian 13's 6.12. Every other VM test boots Debian 12's 6.1 (tests/vm.rs, vm_luks.rs,
//! vm_reliability.rs); 5.10 could not activate a single disk while nothing booted it.
//!
//! Why one boot per kernel: a TCG boot costs its kernel's start-up once, and the suite's budget
//! (README, "Tests") leaves room for about two extra boots, not for the 6.1 suite three times.
//! So each boot runs `tests/vm/guest/kernel_matrix.sh`: the unchanged scenario scripts of the
//! 6.1 suite that cover what differs by kernel — LUKS interop with cryptsetup (tables equal,
//! format and activate), the fast start with online growth under load followed by the integrity
//! stress (at 10 directories per writer) on the grown file system and its cleanup, and the
//! reliability signal rows (concurrent dm-integrity
//! creation, SIGKILL then `cleanup`, SIGTERM/INT/HUP rollback, key hygiene) — each on its own
//! small disk, after printing the kernel's target versions and tables (`KERNEL|...` lines,
//! recorded in vendor-notes.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

mod vmharness;

/// Boot `kernel` (a Debian codename, see `tests/vm/run.sh --kernel`) with the kernel matrix.
fn run_matrix(test: &str, kernel: &str) {
    if !vmharness::vm_possible(test) {
        return;
    }
    let example = vmharness::build_example("luks_activate");
    // rel_concurrency.sh's positive control of the /proc/keys check needs it at /guest.
    let keyring_probe = vmharness::build_example("keyring_probe");
    let guest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/guest");
    // The harness packs only the scenario and the *lib.sh files; the parts go as extra files.
    let mut files = vec![
        example.to_string_lossy().into_owned(),
        keyring_probe.to_string_lossy().into_owned(),
    ];
    files.extend(
        PARTS
            .iter()
            .map(|p| guest.join(p).to_string_lossy().into_owned()),
    );
    let mut extra: Vec<&str> = Vec::new();
    for f in &files {
        extra.extend(["--file", f.as_str()]);
    }
    extra.extend(["--timeout", "900"]);
    vmharness::run_scenario_on_kernel(
        test,
        kernel,
        "kernel_matrix.sh",
        &format!("kernel-matrix-{kernel}"),
        "1G,4G,1G,1G",
        4,
        Path::new(env!("CARGO_BIN_EXE_scratchcrypt")),
        &extra,
    );
}

/// The scenario scripts of the 6.1 suite that the matrix runs, unchanged.
const PARTS: [&str; 4] = [
    "luks_format_activate.sh",
    "luks_tables_equal.sh",
    "fast_start.sh",
    "rel_concurrency.sh",
];

/// Debian 11's Linux 5.10 (dm-integrity 1.6.0, dm-crypt 1.22.0): the oldest kernel tested.
#[test]
fn vm_kernel_5_10_core_scenarios() {
    run_matrix("vm_kernel_5_10_core_scenarios", "bullseye");
}

/// Debian 13's Linux 6.12 (dm-integrity 1.14.0, dm-crypt 1.28.0).
#[test]
fn vm_kernel_6_12_core_scenarios() {
    run_matrix("vm_kernel_6_12_core_scenarios", "trixie");
}

/// The matrix and the scripts it runs exist where the tests expect them.
#[test]
fn kernel_matrix_scripts_exist() {
    let guest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/guest");
    for g in PARTS.iter().chain(&["kernel_matrix.sh"]) {
        assert!(guest.join(g).is_file(), "{g}");
    }
}
