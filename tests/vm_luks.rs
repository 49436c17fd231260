//! LUKS2 format and device-mapper activation under a real kernel: each test boots a qemu TCG
//! guest that runs the `luks_activate` example against a fresh
//! virtio disk and checks the result with cryptsetup and dmsetup as oracles
//! (tests/vm/guest/luks_*.sh). The host kernel has no device-mapper, so this is the only place
//! the real format, tables, keyring and removal run.
//!
//! The guest is booted by the project's shared harness `tests/vm/run.sh` when it is present
//! (`$SCRATCHCRYPT_VM_RUN` overrides the path), otherwise by this module's own
//! `tests/vm/luks_runner.sh`. Both run the same scripts, which print the harness's verdict
//! line `SCRATCHCRYPT-VM: PASS <label>`.
//!
//! Outside CI a missing qemu skips with a message; with `CI=true` it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One guest at a time: two cores are shared with the rest of the test suite.
static VM: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Build the example binary the guest runs, and return its path.
fn example_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "luks_activate"])
        .current_dir(root())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "building the luks_activate example failed"
    );
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/vm_luks-<hash> -> target/debug/examples/luks_activate
    let target = exe.parent().unwrap().parent().unwrap().parent().unwrap();
    target.join("debug/examples/luks_activate")
}

/// Run `guest` in the VM with a disk of `size`; return its output, or None when the VM cannot
/// run here and we are not in CI.
fn run_guest(guest: &str, size: &str) -> Option<String> {
    let _one = VM.lock().unwrap_or_else(|e| e.into_inner());
    let have_qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_qemu {
        assert!(
            std::env::var("CI").is_err(),
            "qemu-system-x86_64 missing in CI"
        );
        eprintln!("skipping: qemu-system-x86_64 is not installed");
        return None;
    }
    let bin = example_binary();
    let script = root().join("tests/vm/guest").join(guest);
    let harness = std::env::var_os("SCRATCHCRYPT_VM_RUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("tests/vm/run.sh"));
    let mut cmd = Command::new("bash");
    if harness.is_file() {
        cmd.arg(&harness)
            .arg("--script")
            .arg(&script)
            .arg("--binary")
            .arg(&bin)
            .args(["--disk-size", size, "--name", guest.trim_end_matches(".sh")]);
    } else {
        cmd.arg(root().join("tests/vm/luks_runner.sh"))
            .arg(&bin)
            .arg(&script)
            .arg(size);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "VM run failed for {guest}:\n{text}");
    Some(text)
}

fn assert_pass(text: &str, guest: &str) {
    assert!(
        text.contains("SCRATCHCRYPT-VM: PASS"),
        "{guest} did not pass:\n{text}"
    );
    assert!(!text.contains("SCRATCHCRYPT-VM: FAIL"), "{guest}:\n{text}");
}

/// Format + activate; luksDump shows LUKS2, no keyslot, hmac(sha256), 4096-byte sectors and the
/// no-journal flag; cryptsetup status sees both layers; cryptsetup close removes them.
#[test]
fn vm_luks_format_and_activate() {
    let guest = "luks_format_activate.sh";
    if let Some(t) = run_guest(guest, "256M") {
        assert_pass(&t, guest);
    }
}

/// The tables we load equal, names and key aside, those `cryptsetup open` loads.
#[test]
fn vm_luks_tables_equal_cryptsetups() {
    let guest = "luks_tables_equal.sh";
    if let Some(t) = run_guest(guest, "256M") {
        assert_pass(&t, guest);
    }
}

/// Data written through our mapping reads back identical through cryptsetup's; busy, taken,
/// missing, nonexistent, non-block and held devices fail with the right exit status.
#[test]
fn vm_luks_data_survives_reopen_and_bad_input_is_refused() {
    let guest = "luks_reopen_data.sh";
    if let Some(t) = run_guest(guest, "256M") {
        assert_pass(&t, guest);
    }
}

/// Without dm-integrity, then without dm-crypt, the error names the missing target.
#[test]
fn vm_luks_missing_targets_are_named() {
    let guest = "luks_missing_targets.sh";
    if let Some(t) = run_guest(guest, "256M") {
        assert_pass(&t, guest);
    }
}

/// A device below the minimum size is refused before anything is written.
#[test]
fn vm_luks_too_small_device_is_refused() {
    let guest = "luks_too_small.sh";
    if let Some(t) = run_guest(guest, "8M") {
        assert_pass(&t, guest);
    }
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
    ] {
        assert!(
            Path::new(&root().join("tests/vm/guest").join(g)).is_file(),
            "{g}"
        );
    }
}
