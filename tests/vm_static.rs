//! The self-contained build (issue 18): `scripts/build-static.sh` links libcryptsetup,
//! libdevmapper and glibc statically, and the result runs encrypt, the integrity stress and
//! cleanup in a guest that has no shared library at all (`tests/vm/run.sh --no-libs`: no `/lib`,
//! no `/usr/lib`, only static busybox, static e2fsck and the static scratchcrypt).
//!
//! The first run builds the two libraries from Debian's source packages (about 1.5 min on two
//! cores) and the static binary in its own target dir (about 4 min cold); later runs reuse the
//! cache under `target/static/` and only relink what changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

mod vmharness;

/// Whether an ELF executable needs a dynamic loader: it has a `PT_INTERP` program header.
/// (A static-pie has `PT_DYNAMIC` for its own relocations, but no interpreter and no NEEDED.)
fn has_interpreter(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(
        &elf[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    assert_eq!(elf[4], 2, "{} is not a 64-bit ELF", path.display());
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

/// The static binary has no interpreter (the dynamic one, as a control of the check, has one)
/// and runs encrypt, the stress and cleanup in a guest without any shared library.
#[test]
fn vm_static_binary_in_a_guest_without_libraries() {
    let test = "vm_static_binary_in_a_guest_without_libraries";
    if !vmharness::vm_possible(test) {
        return;
    }
    assert!(has_interpreter(Path::new(env!(
        "CARGO_BIN_EXE_scratchcrypt"
    ))));
    // Builds (or reuses) the static binary.
    let bin = vmharness::build_script("build-static.sh");
    assert!(
        !has_interpreter(&bin),
        "{} is dynamically linked",
        bin.display()
    );
    vmharness::run_scenario_args(
        test,
        "static_stress.sh",
        "static-stress-1g",
        "1G",
        1,
        &bin,
        &["--no-libs"],
    );
}

/// `run.sh --no-libs` refuses a dynamically linked binary before it boots anything (status 3),
/// so the guest above cannot pass with shared libraries smuggled in.
#[test]
fn vm_no_libs_refuses_a_dynamic_binary() {
    let test = "vm_no_libs_refuses_a_dynamic_binary";
    if !vmharness::vm_possible(test) {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm");
    let out = Command::new("bash")
        .arg(dir.join("run.sh"))
        .arg("--script")
        .arg(dir.join("guest/static_stress.sh"))
        .args(["--no-libs", "--disk-size", "16M", "--timeout", "5"])
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_scratchcrypt"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "run.sh: {}\n{err}", out.status);
    assert!(err.contains("dynamically linked"), "{err}");
}
