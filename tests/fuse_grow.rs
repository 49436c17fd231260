//! Fast start on the strict-read device: a small ext4 grown online by the library's own
//! grower reads nothing that was never written, during the growth and in the stress, crash
//! replay and e2fsck after it; and dropping what the grower zeroes is caught.
//!
//! The device is the FUSE-backed loop device of `tests/support` (every read of a block never
//! written fails with EIO and is logged), so this needs no device-mapper.
//!
//! # Where it runs
//! Online resize needs CAP_SYS_RESOURCE, which this project's development and CI machines lack
//! even as root. Until issue 23 these tests then checked only the kernel's EPERM and passed, so
//! "0 skipped" hid three tests that never grew anything. Now each growth test requires the
//! capability under the one skip rule, and the binary is not part of `cargo test`
//! (`test = false` in Cargo.toml): `vm_fuse_grow_in_guest` (tests/vm.rs) builds it and runs it
//! inside the qemu guest, where root has every capability, with skips forbidden. On a machine
//! that has the capability, `cargo test --test fuse_grow` runs it natively.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use scratchcrypt::extent::ByteRange;
use scratchcrypt::resize::GrowStep;
use scratchcrypt::{build_image, grow_mounted, FormatOptions, FormatPlan, GrowOptions};
use support::privileged;
use support::stress::{Ext4Mount, StressConfig};
use support::strict_device::StrictDevice;

const MIB: u64 = 1 << 20;

/// Three flex chunks' worth of growth would be slow through FUSE; 3 GiB from 512 MiB is two
/// steps (groups 4..16, then 16..24), the second starting on a flex boundary.
const FULL: u64 = 3 << 30;
const INITIAL: u64 = 512 * MIB;

/// The strict device with a fast-start ext4 written the way the pipeline writes it (the plan's
/// zero ranges, then the image's data extents).
struct Prepared {
    dev: StrictDevice,
    _tmp: tempfile::TempDir,
    image: PathBuf,
    plan: FormatPlan,
}

fn prepare(initial: Option<u64>) -> Prepared {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image");
    let opts = FormatOptions {
        initial_bytes: initial,
        ..FormatOptions::default()
    };
    let plan = build_image(&image, FULL, &opts).unwrap();
    let dev = StrictDevice::new(FULL, 4096).unwrap();
    support::sparse_copy::zero_then_copy(&plan, &image, dev.device_path()).unwrap();
    assert_eq!(
        dev.refused_reads(),
        vec![],
        "formatting read unwritten blocks"
    );
    Prepared {
        dev,
        _tmp: tmp,
        image,
        plan,
    }
}

/// CAP_SYS_RESOURCE, the capability `ext4_resize_begin` requires (`include/uapi/linux/capability.h`).
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether the calling thread may resize a mounted ext4 (CAP_SYS_RESOURCE in its effective
/// set; some sandboxes drop it even for root, this project's machines among them).
fn has_cap_sys_resource() -> bool {
    let caps = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let eff = caps
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff in /proc/thread-self/status");
    eff & (1 << CAP_SYS_RESOURCE) != 0
}

/// The growth tests need the capability; without it they skip (or fail, under the one skip
/// rule's `SCRATCHCRYPT_REQUIRE_PRIVILEGED=1`): they never pass without having grown.
fn can_grow(test: &str) -> bool {
    has_cap_sys_resource()
        || !support::skip::cannot_run(
            test,
            "no CAP_SYS_RESOURCE: the kernel refuses online resize (vm_fuse_grow_in_guest runs \
             this binary where root has it)",
        )
}

/// Drop CAP_SYS_RESOURCE from the calling thread's effective set (capabilities are per thread
/// in Linux; the FUSE daemon's thread keeps its own). A no-op where it is missing already.
fn drop_cap_sys_resource_in_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522; // _LINUX_CAPABILITY_VERSION_3: two Data entries
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a version-3 header reads two `Data` entries into `data`, which is an
    // array of exactly two `#[repr(C)]` structs laid out as the kernel's
    // `struct __user_cap_data_struct`; both pointers are valid for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_SYS_RESOURCE);
    // SAFETY: as above; capset only reads the header and the two entries, and pid 0 means the
    // calling thread, so no other thread's credentials change.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
    assert!(!has_cap_sys_resource(), "CAP_SYS_RESOURCE still effective");
}

/// Without CAP_SYS_RESOURCE: the growth fails with the kernel's EPERM, as a permission error
/// naming the step and the mount, and the filesystem keeps its size and stays mountable.
fn check_refused_growth(p: &Prepared, dir: &Path, m: Ext4Mount) {
    let err = grow_mounted(
        p.dev.device_path(),
        dir,
        p.plan.final_block_count,
        &GrowOptions::default(),
    )
    .unwrap_err();
    eprintln!("refused as expected: {}", err.line());
    assert_eq!(err.step(), Some(scratchcrypt::Step::Grow), "{}", err.line());
    assert!(
        err.line().contains("Operation not permitted"),
        "{}",
        err.line()
    );
    assert_eq!(err.class(), scratchcrypt::ErrorClass::PermissionDenied);
    let st = nix::sys::statvfs::statvfs(dir).unwrap();
    assert!(
        st.blocks() * st.fragment_size() <= INITIAL,
        "the filesystem changed size"
    );
    m.unmount().unwrap();
    let again = mount(&p.dev, dir);
    again.unmount().unwrap();
    assert_eq!(p.dev.refused_reads(), vec![]);
}

/// Without CAP_SYS_RESOURCE (dropped in this thread, so this runs on every machine) the
/// growth is refused with EPERM as a permission error, and nothing about the file system changes.
#[test]
fn fuse_grow_without_cap_sys_resource_is_a_permission_error() {
    if !privileged::can_run("fuse_grow_without_cap_sys_resource_is_a_permission_error") {
        return;
    }
    let _serial = privileged::serial();
    let p = prepare(Some(INITIAL));
    let dir = tempfile::tempdir().unwrap();
    let m = mount(&p.dev, dir.path());
    drop_cap_sys_resource_in_this_thread();
    check_refused_growth(&p, dir.path(), m);
    p.dev.close().unwrap();
}

/// Mount with no options at all: `noinit_itable` must come from the superblock.
fn mount(dev: &StrictDevice, dir: &Path) -> Ext4Mount {
    Ext4Mount::new(dev.device_path(), dir, "").unwrap()
}

/// The whole growth: two resize steps, nothing unwritten read, the full size reached; then
/// the usual stress (parallel writers, drop_caches, crash and journal replay, e2fsck) is
/// clean on the grown filesystem.
#[test]
fn fuse_grow_online_reads_nothing_unwritten() {
    if !privileged::can_run("fuse_grow_online_reads_nothing_unwritten")
        || !can_grow("fuse_grow_online_reads_nothing_unwritten")
    {
        return;
    }
    let _serial = privileged::serial();
    let p = prepare(Some(INITIAL));
    assert_eq!(p.plan.block_count, INITIAL / 4096);
    let dir = tempfile::tempdir().unwrap();
    let m = mount(&p.dev, dir.path());
    let calls = Arc::new(AtomicU64::new(0));
    let seen = calls.clone();
    let options = GrowOptions {
        progress: Some(Arc::new(move |_, done, total| {
            assert!(done <= total);
            seen.fetch_add(1, Ordering::SeqCst);
        })),
        ..GrowOptions::default()
    };
    let report = grow_mounted(
        p.dev.device_path(),
        dir.path(),
        p.plan.final_block_count,
        &options,
    )
    .unwrap();
    assert_eq!(report.steps, 2, "{report:?}");
    // The split of the time: both parts measured, neither more than the whole.
    assert!(
        report.resize_seconds > 0.0 && report.zero_seconds > 0.0,
        "{report:?}"
    );
    assert!(
        report.zero_seconds + report.resize_seconds <= report.seconds,
        "{report:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(report.fs_bytes, p.plan.final_block_count * 4096);
    let st = nix::sys::statvfs::statvfs(dir.path()).unwrap();
    assert!(
        st.blocks() * st.fragment_size() > FULL * 9 / 10,
        "statvfs after growth"
    );
    assert_eq!(
        p.dev.refused_reads(),
        vec![],
        "the growth read unwritten blocks"
    );
    // Growing again is a no-op.
    let again = grow_mounted(
        p.dev.device_path(),
        dir.path(),
        p.plan.final_block_count,
        &GrowOptions::default(),
    )
    .unwrap();
    assert_eq!((again.steps, again.fs_bytes), (0, report.fs_bytes));
    m.unmount().unwrap();
    support::assert_survives_stress(&p.dev, Some(&p.image), &StressConfig::default());
    p.dev.close().unwrap();
}

/// Negative control: without the chunk's bitmaps zeroed, the kernel's checksumming of the new
/// groups reads them and the strict device refuses.
#[test]
fn fuse_grow_without_bitmaps_is_caught() {
    if !privileged::can_run("fuse_grow_without_bitmaps_is_caught")
        || !can_grow("fuse_grow_without_bitmaps_is_caught")
    {
        return;
    }
    let _serial = privileged::serial();
    fn only_last_block(step: &GrowStep) -> Vec<ByteRange> {
        step.zero.last().into_iter().copied().collect()
    }
    let p = prepare(Some(INITIAL));
    let dir = tempfile::tempdir().unwrap();
    let m = mount(&p.dev, dir.path());
    let options = GrowOptions {
        zero_filter: Some(only_last_block),
        ..GrowOptions::default()
    };
    let result = grow_mounted(
        p.dev.device_path(),
        dir.path(),
        p.plan.final_block_count,
        &options,
    );
    let refused = p.dev.refused_reads();
    eprintln!("without bitmaps: {result:?}, refused {refused:?}");
    assert!(
        !refused.is_empty(),
        "the missing bitmaps were not read: control is blind"
    );
    let chunk_start = INITIAL / 4096;
    assert!(
        refused
            .iter()
            .any(|r| r.block >= chunk_start && r.block < chunk_start + 64),
        "refused reads are not the chunk's bitmaps: {refused:?}"
    );
    let _ = m.unmount();
    p.dev.close().unwrap();
}

/// Negative control: without the new last block written, the kernel's first read of the
/// resize is refused and the growth fails with an error that names the step.
#[test]
fn fuse_grow_without_last_block_is_caught() {
    if !privileged::can_run("fuse_grow_without_last_block_is_caught")
        || !can_grow("fuse_grow_without_last_block_is_caught")
    {
        return;
    }
    let _serial = privileged::serial();
    fn all_but_last_block(step: &GrowStep) -> Vec<ByteRange> {
        let last = (step.blocks - 1) * 4096;
        step.zero
            .iter()
            .copied()
            .filter(|r| r.end() <= last)
            .collect()
    }
    let p = prepare(Some(INITIAL));
    let dir = tempfile::tempdir().unwrap();
    let m = mount(&p.dev, dir.path());
    let options = GrowOptions {
        zero_filter: Some(all_but_last_block),
        ..GrowOptions::default()
    };
    let err = grow_mounted(
        p.dev.device_path(),
        dir.path(),
        p.plan.final_block_count,
        &options,
    )
    .unwrap_err();
    assert_eq!(err.step(), Some(scratchcrypt::Step::Grow), "{}", err.line());
    let refused = p.dev.refused_reads();
    let last = 16 * 32768 - 1;
    assert!(
        refused.iter().any(|r| r.block == last),
        "block {last} not refused: {refused:?} ({})",
        err.line()
    );
    let _ = m.unmount();
    p.dev.close().unwrap();
}

/// A filesystem made without a fast start (no `noinit_itable` in its superblock) is refused
/// before anything is written: the kernel would leave its new inode tables unwritten.
#[test]
fn fuse_grow_refuses_a_full_format() {
    if !privileged::can_run("fuse_grow_refuses_a_full_format") {
        return;
    }
    let _serial = privileged::serial();
    let p = prepare(None);
    let dir = tempfile::tempdir().unwrap();
    let m = mount(&p.dev, dir.path());
    let written = p.dev.written_blocks();
    let err = grow_mounted(
        p.dev.device_path(),
        dir.path(),
        p.plan.block_count + 32768,
        &GrowOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.line().contains("was not made with a fast start"),
        "{}",
        err.line()
    );
    assert_eq!(
        p.dev.written_blocks(),
        written,
        "something was written before the refusal"
    );
    let _ = m.unmount();
    p.dev.close().unwrap();
}
