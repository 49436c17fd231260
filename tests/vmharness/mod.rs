//! The Rust side of the qemu harness, shared by the VM test binaries: boot one guest through
//! `tests/vm/run.sh` and assert its verdict line.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

#[path = "../support/skip.rs"]
pub mod skip;

/// One guest at a time: each uses two emulated CPUs on a two-core host.
static VM_LOCK: Mutex<()> = Mutex::new(());

/// Per-boot limit; the harness kills qemu after it.
const TIMEOUT_SECS: u64 = 420;

fn vm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm")
}

/// Whether the harness can run here; a missing capability skips or fails by the one rule
/// (`tests/support/skip.rs`).
pub fn vm_possible(test: &str) -> bool {
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
    !skip::cannot_run(
        test,
        "qemu-system-x86_64 missing and not root (cannot install it)",
    )
}

/// Boot one guest running `script` on a sparse disk of `disk_size`; assert a PASS verdict for `label`.
pub fn run_scenario(test: &str, script: &str, label: &str, disk_size: &str, binary: &Path) {
    run_scenario_on(test, script, label, disk_size, 1, binary);
}

/// The running test binary's profile directory: target/<profile>/deps/<test>-<hash> ->
/// target/<profile>.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Build the example `name` (the library driven by a small program, for scenarios that need
/// the library's test hooks) and return the path of its binary.
#[allow(dead_code)] // not every test binary that includes the harness uses it
pub fn build_example(name: &str) -> std::path::PathBuf {
    let profile = profile_dir();
    // Build it in the profile of the tests (`cargo test --release` looks in target/release).
    let mut args = vec!["build", "--quiet", "--example", name];
    if profile.file_name().is_some_and(|p| p == "release") {
        args.push("--release");
    }
    let status = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "building the {name} example failed");
    profile.join("examples").join(name)
}

/// Build the integration-test binary `name` (`cargo test --no-run --test <name>`, in the profile
/// of the running tests) and return the path of its executable, from cargo's JSON messages.
pub fn build_test_binary(name: &str) -> PathBuf {
    let release = profile_dir().file_name().is_some_and(|n| n == "release");
    let mut args = vec![
        "test",
        "--no-run",
        "--quiet",
        "--message-format=json",
        "--test",
        name,
    ];
    if release {
        args.push("--release");
    }
    let out = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot run cargo");
    assert!(
        out.status.success(),
        "building the test binary {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One JSON object per line; ours is the compiler-artifact of target `name` with an
    // "executable". A line-level look-up keeps this free of a JSON dependency.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let target = format!("\"name\":\"{name}\"");
    let path = stdout
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\"") && l.contains(&target))
        .find_map(|l| {
            let rest = &l[l.find("\"executable\":\"")? + "\"executable\":\"".len()..];
            Some(PathBuf::from(&rest[..rest.find('"')?]))
        })
        .unwrap_or_else(|| panic!("cargo named no executable for the test {name}"));
    assert!(path.is_file(), "{} is no file", path.display());
    path
}

/// Run the build script `scripts/<script>`, which prints the path of what it built on stdout,
/// and return that path (it must be a file). A failure shows the end of the script's stderr.
pub fn build_script(script: &str) -> PathBuf {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .join(script),
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{script}: {e}"));
    let log = String::from_utf8_lossy(&out.stderr);
    let mut tail = log.len().saturating_sub(6000);
    while !log.is_char_boundary(tail) {
        tail += 1;
    }
    assert!(
        out.status.success(),
        "scripts/{script} failed ({}):\n{}",
        out.status,
        &log[tail..]
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    eprintln!(
        "{script}: {} in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        path.is_file(),
        "scripts/{script} printed {}, which is no file",
        path.display()
    );
    path
}

/// [`run_scenario`] with `disks` fresh disks of `disk_size` (/dev/vda, /dev/vdb, ...).
pub fn run_scenario_on(
    test: &str,
    script: &str,
    label: &str,
    disk_size: &str,
    disks: u32,
    binary: &Path,
) {
    run_scenario_args(test, script, label, disk_size, disks, binary, &[]);
}

/// [`run_scenario_on`] with more options for `run.sh` (e.g. `--hotplug`, `--no-libs`).
#[allow(dead_code)] // not every test binary that includes the harness uses it
pub fn run_scenario_args(
    test: &str,
    script: &str,
    label: &str,
    disk_size: &str,
    disks: u32,
    binary: &Path,
    extra: &[&str],
) {
    if !vm_possible(test) {
        return;
    }
    let dir = vm_dir();
    let mut cmd = Command::new("bash");
    cmd.arg(dir.join("run.sh"))
        .arg("--script")
        .arg(dir.join("guest").join(script))
        .arg("--binary")
        .arg(binary)
        .args(["--disk-size", disk_size, "--name", label])
        .args(["--disks", &disks.to_string()])
        .args(["--timeout", &TIMEOUT_SECS.to_string()])
        .args(extra);
    run_boot(test, label, cmd);
}

/// [`run_scenario_args`] on the guest kernel `kernel` (`tests/vm/run.sh --kernel`: a Debian
/// codename such as `bullseye` or `trixie`, or a kernel package name).
#[allow(clippy::too_many_arguments)]
pub fn run_scenario_on_kernel(
    test: &str,
    kernel: &str,
    script: &str,
    label: &str,
    disk_size: &str,
    disks: u32,
    binary: &Path,
    extra: &[&str],
) {
    let mut args = vec!["--kernel", kernel];
    args.extend_from_slice(extra);
    run_scenario_args(test, script, label, disk_size, disks, binary, &args);
}

/// The verdict of one boot from its console lines and whether `run.sh` exited 0: a PASS line for
/// `label`, no FAIL line, and `/init`'s END marker after the PASS (a PASS followed by a timeout or
/// a crash has no END). Both sides check: `run.sh` alone could be fooled by a PASS printed before
/// a hang, this alone by a harness that lost qemu's status. A FAIL counts anywhere in a line (the
/// serial console interleaves kernel output with the guest's); a PASS only as a whole line.
pub fn verdict(lines: &[&str], label: &str, harness_ok: bool) -> Result<(), String> {
    let pass = format!("SCRATCHCRYPT-VM: PASS {label}");
    let end = format!("SCRATCHCRYPT-VM: END {label}");
    if let Some(failed) = lines.iter().find(|l| l.contains("SCRATCHCRYPT-VM: FAIL ")) {
        return Err(failed.trim_end().to_string());
    }
    let Some(pass_at) = lines.iter().position(|l| l.trim_end() == pass) else {
        return Err("no PASS verdict (guest crashed or timed out)".to_string());
    };
    if !lines[pass_at..].iter().any(|l| l.trim_end() == end) {
        return Err("PASS but no END marker after it (the guest hung or was killed)".to_string());
    }
    if !harness_ok {
        return Err("PASS and END, but tests/vm/run.sh failed (timeout or qemu error)".to_string());
    }
    Ok(())
}

/// Run a prepared harness command (e.g. `tests/vm/initramfs.sh`, which ends in `run.sh`) as one
/// boot under the VM lock and assert the PASS verdict for `label`, as [`run_scenario_on`] does.
pub fn run_boot(test: &str, label: &str, mut cmd: Command) {
    if !vm_possible(test) {
        return;
    }
    let _guard = VM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let out = cmd.output().expect("cannot run the VM harness");
    let secs = started.elapsed().as_secs_f64();
    let console = String::from_utf8_lossy(&out.stdout);
    let harness = String::from_utf8_lossy(&out.stderr);
    eprintln!("{test}: VM boot {label} took {secs:.1} s");
    let lines: Vec<&str> = console.lines().collect();
    if let Err(verdict) = verdict(&lines, label, out.status.success()) {
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        panic!(
            "{test}: VM boot {label} failed after {secs:.1} s: {verdict}\n\
             harness exit: {}\n--- harness ---\n{harness}\n--- console (last 80 lines) ---\n{tail}",
            out.status
        );
    }
}

/// The per-boot limit, for harness commands built by the test binaries.
pub fn timeout_secs() -> u64 {
    TIMEOUT_SECS
}
