//! VM scenarios: dm-crypt + dm-integrity under Debian's kernel in a qemu TCG guest.
//!
//! Why a VM: neither this machine's kernel nor CI's has device-mapper, so the only way to run the
//! product against real dm-integrity (where a never-written block reads back as EIO) is to boot a
//! kernel that has it. `tests/vm/run.sh` builds a busybox initramfs with the freshly built
//! `scratchcrypt`, boots it with a sparse raw test disk, and the guest script prints one verdict line
//! (`SCRATCHCRYPT-VM: PASS <label>` or `SCRATCHCRYPT-VM: FAIL <label>: <reason>`) before powering off.
//! Each test here runs one boot and asserts that verdict; boots are serialised because every guest
//! uses both host cores.
//!
//! The stress itself lives in `tests/vm/guest/lib.sh`; the negative control proves it catches the
//! original's defect, the positive control that it raises no false alarm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

/// One guest at a time: each uses two emulated CPUs on a two-core host.
static VM_LOCK: Mutex<()> = Mutex::new(());

/// Per-boot limit; the harness kills qemu after it.
const TIMEOUT_SECS: u64 = 420;

fn vm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm")
}

/// Whether the harness can run here; outside CI a missing capability skips with a message.
fn vm_possible(test: &str) -> bool {
    let have_qemu = Command::new("sh")
        .args(["-c", "command -v qemu-system-x86_64"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    // As root the harness installs what is missing through scripts/deps.sh.
    let root = nix::unistd::Uid::effective().is_root();
    if have_qemu || root {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: qemu-system-x86_64 is missing and we are not root, in CI");
    }
    eprintln!("{test}: SKIPPED: qemu-system-x86_64 missing and not root (cannot install it)");
    false
}

/// Boot one guest running `script` on a sparse disk of `disk_size`; assert a PASS verdict for `label`.
fn run_scenario(test: &str, script: &str, label: &str, disk_size: &str) {
    if !vm_possible(test) {
        return;
    }
    let _guard = VM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let dir = vm_dir();
    let out = Command::new("bash")
        .arg(dir.join("run.sh"))
        .arg("--script")
        .arg(dir.join("guest").join(script))
        .args(["--binary", env!("CARGO_BIN_EXE_scratchcrypt")])
        .args(["--disk-size", disk_size, "--name", label])
        .args(["--timeout", &TIMEOUT_SECS.to_string()])
        .output()
        .expect("cannot run tests/vm/run.sh");
    let secs = started.elapsed().as_secs_f64();
    let console = String::from_utf8_lossy(&out.stdout);
    let harness = String::from_utf8_lossy(&out.stderr);
    eprintln!("{test}: VM scenario {label} took {secs:.1} s");

    let pass = format!("SCRATCHCRYPT-VM: PASS {label}");
    let fail = format!("SCRATCHCRYPT-VM: FAIL {label}");
    let lines: Vec<&str> = console.lines().collect();
    let passed = lines.iter().any(|l| l.trim_end() == pass);
    let failed = lines.iter().find(|l| l.starts_with(&fail));
    if !passed || failed.is_some() || !out.status.success() {
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        let verdict = failed.map_or("no verdict (guest crashed or timed out)", |l| l);
        panic!(
            "{test}: VM scenario {label} failed after {secs:.1} s: {verdict}\n\
             harness exit: {}\n--- harness ---\n{harness}\n--- console (last 60 lines) ---\n{tail}",
            out.status
        );
    }
}

/// The guest kernel creates dm-integrity + dm-crypt devices (cryptsetup oracle), a block written
/// through them reads back identical, and closing leaves no mapping and no kernel error.
#[test]
fn vm_dm_sanity() {
    run_scenario("vm_dm_sanity", "dm_sanity.sh", "dm-sanity", "1G");
}

/// `scratchcrypt encrypt` gives a mountable ext4 whose files survive umount/remount, e2fsck -fn is
/// clean, `scratchcrypt cleanup` leaves no mapping, and the kernel logs no error.
#[test]
fn vm_scratchcrypt_roundtrip() {
    run_scenario(
        "vm_scratchcrypt_roundtrip",
        "scratchcrypt_roundtrip.sh",
        "scratchcrypt-roundtrip",
        "1G",
    );
}

/// The parallel integrity stress on a 1 GiB disk prepared by `scratchcrypt encrypt` passes with a
/// kernel log free of AEAD / I/O / ext4 errors from the encrypt step on.
#[test]
fn vm_scratchcrypt_stress_1g() {
    run_scenario(
        "vm_scratchcrypt_stress_1g",
        "scratchcrypt_stress.sh",
        "scratchcrypt-stress-1g",
        "1G",
    );
}

/// Same stress on a 4 GiB disk (more block groups, flex_bg spanning several inode-table runs).
#[test]
fn vm_scratchcrypt_stress_4g() {
    run_scenario(
        "vm_scratchcrypt_stress_4g",
        "scratchcrypt_stress.sh",
        "scratchcrypt-stress-4g",
        "4G",
    );
}

/// Negative control, 1 GiB: the original's recipe (no wipe, default mkfs image, hole-skipping copy)
/// must make the stress fail with kernel integrity errors; the scenario passes only if it does.
#[test]
fn vm_negative_control_1g() {
    run_scenario(
        "vm_negative_control_1g",
        "negative_control.sh",
        "negative-control-1g",
        "1G",
    );
}

/// Negative control at 4 GiB: the stress still detects the original's defect.
#[test]
fn vm_negative_control_4g() {
    run_scenario(
        "vm_negative_control_4g",
        "negative_control.sh",
        "negative-control-4g",
        "4G",
    );
}

/// Positive control: on a fully wiped LUKS2 + dm-integrity disk with mkfs run on the mapping, the
/// stress passes with a clean kernel log (it raises no false alarm).
#[test]
fn vm_positive_control() {
    run_scenario(
        "vm_positive_control",
        "positive_control.sh",
        "positive-control",
        "256M",
    );
}
