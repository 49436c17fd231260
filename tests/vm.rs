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
//! original's defect; the scratchcrypt scenarios show it raises no false alarm on a correct disk
//! (`guest/positive_control.sh`, cryptsetup's full wipe, is run by the VM benchmark instead).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

mod vmharness;

/// Boot one guest running `script` with the freshly built `scratchcrypt` and assert PASS.
fn run_scenario(test: &str, script: &str, label: &str, disk_size: &str) {
    vmharness::run_scenario(
        test,
        script,
        label,
        disk_size,
        Path::new(env!("CARGO_BIN_EXE_scratchcrypt")),
    );
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

/// Fast start at 4 GiB: encrypt returns small and mounted, a killed grower is resumed by
/// `grow` while writers run, the grown file system passes the stress, and `cleanup` stops a
/// running grower; the kernel log stays free of integrity errors throughout.
#[test]
fn vm_fast_start_4g() {
    run_scenario("vm_fast_start_4g", "fast_start.sh", "fast-start-4g", "4G");
}
