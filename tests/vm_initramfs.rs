//! The Debian package at boot: scratchcrypt's .deb (scripts/build-deb.sh) unpacked, an
//! initramfs made from it by Debian's own `mkinitramfs` for the harness kernel, booted under
//! qemu with a small ext4 real root and scratch disks (`tests/vm/initramfs.sh`). The real root's
//! init checks what the initramfs left (`tests/vm/guest/initramfs_check.sh`) and prints the
//! verdict, judged as every VM verdict is (PASS, then END, qemu exiting 0, a clean kernel log).
//! Also: the package holds what it should, and its systemd unit passes `systemd-analyze verify`
//! with the package's files in place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

mod vmharness;

use vmharness::skip;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The .deb, built once per test binary by scripts/build-deb.sh (a release build; cargo-deb is
/// installed from crates.io when missing).
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| vmharness::build_script("build-deb.sh"))
}

fn root_or_skip(test: &str) -> bool {
    nix::unistd::Uid::effective().is_root()
        || !skip::cannot_run(
            test,
            "not root (mkinitramfs runs in a mount namespace of its own)",
        )
}

/// One boot through `tests/vm/initramfs.sh`.
fn boot(test: &str, label: &str, disks: u32, append: &str, tab: &str) {
    if !root_or_skip(test) || !vmharness::vm_possible(test) {
        return;
    }
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("tests/vm/initramfs.sh"))
        .arg("--deb")
        .arg(deb())
        .args(["--name", label, "--disks", &disks.to_string()])
        .args(["--disk-size", "512M", "--append", append, "--tab", tab])
        .args(["--timeout", &vmharness::timeout_secs().to_string()]);
    vmharness::run_boot(test, label, cmd);
}

/// The command line's entry and the table's entry, both present: both disks are mounted
/// read-write under the real root, files written there read back after drop_caches,
/// `scratchcrypt status` lists both with source and mount point, and the boot's kernel log is
/// free of integrity and I/O errors.
#[test]
fn vm_initramfs_boot_mounts_scratch_disks() {
    boot(
        "vm_initramfs_boot_mounts_scratch_disks",
        "initramfs-boot",
        2,
        "scratchcrypt=/dev/vdb:/scratch:name=scratch",
        "# the test's table\n/dev/vdc  /scratch2  name=tab,wait=10",
    );
}

/// The same entries with no scratch disk attached: both failures are logged, the mount points
/// stay empty, no mapping is left, and the boot reaches the real root's init.
#[test]
fn vm_initramfs_missing_disk_boot_goes_on() {
    boot(
        "vm_initramfs_missing_disk_boot_goes_on",
        "initramfs-missing",
        0,
        "scratchcrypt=/dev/vdb:/scratch:name=scratch,wait=2",
        "/dev/vdc /scratch2 name=tab,wait=1",
    );
}

/// Under a real systemd and udev (a debootstrapped Debian root, cached by tests/vm/sysroot.sh):
/// the package's `scratchcrypt@dev-vdb.service`, enabled with `MOUNTPOINT=/scratch`, has the
/// disk mounted and usable before a unit ordered after it runs; `status` lists it; stopping the
/// unit unmounts it and removes the mapping; the kernel log stays clean.
#[test]
fn vm_systemd_unit_prepares_and_cleans_up() {
    let test = "vm_systemd_unit_prepares_and_cleans_up";
    if !root_or_skip(test) || !vmharness::vm_possible(test) {
        return;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(repo().join("tests/vm/sysroot.sh"))
        .arg(target.join("vm"))
        .output()
        .expect("cannot run tests/vm/sysroot.sh");
    assert!(
        out.status.success(),
        "tests/vm/sysroot.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    eprintln!(
        "{test}: systemd root {} ready in {:.1} s",
        sysroot.display(),
        started.elapsed().as_secs_f64()
    );
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("tests/vm/initramfs.sh"))
        .arg("--deb")
        .arg(deb())
        .arg("--systemd-root")
        .arg(&sysroot)
        .args([
            "--name",
            "systemd-unit",
            "--disks",
            "1",
            "--disk-size",
            "512M",
        ])
        .args(["--timeout", &vmharness::timeout_secs().to_string()]);
    vmharness::run_boot(test, "systemd-unit", cmd);
}

/// The package holds the binary, man pages, completions, the initramfs hook and boot script
/// and the unit, at the paths the tools look in.
#[test]
fn deb_holds_everything_in_place() {
    if !root_or_skip("deb_holds_everything_in_place") {
        return;
    }
    let out = Command::new("dpkg-deb")
        .arg("-c")
        .arg(deb())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8_lossy(&out.stdout);
    for (path, mode) in [
        ("./usr/sbin/scratchcrypt", "-rwxr-xr-x"),
        ("./usr/share/man/man1/scratchcrypt.1.gz", "-rw-r--r--"),
        (
            "./usr/share/man/man1/scratchcrypt-encrypt.1.gz",
            "-rw-r--r--",
        ),
        (
            "./usr/share/man/man1/scratchcrypt-status.1.gz",
            "-rw-r--r--",
        ),
        (
            "./usr/share/bash-completion/completions/scratchcrypt",
            "-rw-r--r--",
        ),
        (
            "./usr/share/zsh/vendor-completions/_scratchcrypt",
            "-rw-r--r--",
        ),
        (
            "./usr/share/fish/vendor_completions.d/scratchcrypt.fish",
            "-rw-r--r--",
        ),
        (
            "./usr/share/initramfs-tools/hooks/scratchcrypt",
            "-rwxr-xr-x",
        ),
        (
            "./usr/share/initramfs-tools/scripts/init-bottom/scratchcrypt",
            "-rwxr-xr-x",
        ),
        (
            "./usr/lib/systemd/system/scratchcrypt@.service",
            "-rw-r--r--",
        ),
        (
            "./usr/share/doc/scratchcrypt/examples/scratchcrypttab",
            "-rw-r--r--",
        ),
    ] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} missing from the package:\n{listing}"));
        assert!(line.starts_with(mode), "{path}: {line}");
    }
    let info = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb())
        .arg("Depends")
        .output()
        .unwrap();
    let depends = String::from_utf8_lossy(&info.stdout);
    assert!(depends.contains("libcryptsetup12"), "Depends: {depends}");
}

/// `systemd-analyze verify` accepts an instance of the unit with the package's files in place
/// (a read-only overlay of the unpacked package over /usr, in a mount namespace of its own).
#[test]
fn systemd_unit_verifies() {
    let test = "systemd_unit_verifies";
    if !root_or_skip(test) {
        return;
    }
    let have = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have && skip::cannot_run(test, "systemd-analyze missing (package systemd)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    let st = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb())
        .arg(&stage)
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-ec"])
        .arg(
            r#"mount -t overlay overlay -o "lowerdir=$1/usr:/usr" /usr
               cp /usr/lib/systemd/system/scratchcrypt@.service "$2/scratchcrypt@dev-vdb.service"
               systemd-analyze verify --man=no "$2/scratchcrypt@dev-vdb.service""#,
        )
        .arg("verify")
        .arg(&stage)
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {out:?}");
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("scratchcrypt"))
        .collect();
    assert!(complaints.is_empty(), "systemd-analyze verify: {stderr}");
}
