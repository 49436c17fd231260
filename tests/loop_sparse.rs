//! Root tests of the extent copier on loop devices and special file systems.
//!
//! Loop devices are attached with the loop ioctls ([`scratchcrypt::loopdev::LoopDevice`]), never
//! with `losetup`, and detached by RAII even after a panic; mounts made here are lazily unmounted
//! by a guard. Without root or loop support the tests skip or fail by the one rule (`tests/support/skip.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Slices of one range are the natural argument of `zero_ranges`.
#![allow(clippy::single_range_in_vec_init)]

#[path = "support/skip.rs"]
mod skip;

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use scratchcrypt::loopdev::LoopDevice;
use scratchcrypt::sparse::{
    check_holes_supported, copy_extents, zero_ranges, zero_ranges_with, SparseError, ZeroMethod,
};

const MIB: u64 = 1 << 20;

/// Whether privileged tests can run; otherwise skip or fail by the one rule.
fn privileged(what: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    let loop_ok = Path::new("/dev/loop-control").exists();
    if root && loop_ok {
        return true;
    }
    let why = if root {
        "no /dev/loop-control"
    } else {
        "not root"
    };
    !skip::cannot_run(what, why)
}

/// A backing file of `size` bytes full of 0xEE behind a loop device of `block` logical block size.
struct Dev {
    _dir: tempfile::TempDir,
    backing: PathBuf,
    dev: LoopDevice,
}

impl Dev {
    fn new(size: u64, block: u32) -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("backing.img");
        let f = File::create(&backing).unwrap();
        let chunk = vec![0xEEu8; MIB as usize];
        for i in 0..size / MIB {
            f.write_all_at(&chunk, i * MIB).unwrap();
        }
        f.sync_all().unwrap();
        let dev = LoopDevice::attach(&backing, block).unwrap();
        Dev {
            _dir: dir,
            backing,
            dev,
        }
    }

    fn open(&self) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dev.path())
            .unwrap()
    }
}

/// Bytes that differ at every offset and are never zero.
fn pattern(r: Range<u64>) -> Vec<u8> {
    r.map(|o| (o % 251) as u8 + 1).collect()
}

/// A lazy unmount when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn mount(fstype: &str, dir: &Path, data: &str) -> Option<Mounted> {
    match nix::mount::mount(
        Some(fstype),
        dir,
        Some(fstype),
        nix::mount::MsFlags::empty(),
        Some(data),
    ) {
        Ok(()) => Some(Mounted(dir.to_path_buf())),
        Err(e) => {
            let thread = std::thread::current();
            skip::cannot_run(
                thread.name().unwrap_or("tests/loop_sparse.rs"),
                &format!("mount {fstype}: {e}"),
            );
            None
        }
    }
}

/// The extents of a sparse image (start, a 10 MiB extent bigger than the buffer, many small
/// ones, the last block) land on a loop device at their offsets, every other byte untouched.
#[test]
fn loop_copy_onto_loop_device_compares_every_byte() {
    if !privileged("loop_copy_onto_loop_device_compares_every_byte") {
        return;
    }
    let size = 64 * MIB;
    let d = Dev::new(size, 4096);
    let img_dir = tempfile::tempdir().unwrap();
    let img_path = img_dir.path().join("image");
    let img = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&img_path)
        .unwrap();
    img.set_len(size).unwrap();
    let mut extents = vec![0..8192, 5 * MIB..15 * MIB, size - 4096..size];
    extents.extend((0..50).map(|i| 20 * MIB + i * 65536..20 * MIB + i * 65536 + 4096));
    for r in &extents {
        img.write_all_at(&pattern(r.clone()), r.start).unwrap();
    }
    let dst = d.open();
    let mut progress = 0;
    let stats = copy_extents(&img, &img_path, &dst, d.dev.path(), &mut |n| {
        progress += n;
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let expected: u64 = extents.iter().map(|r| r.end - r.start).sum();
    assert_eq!(stats.bytes_copied, expected);
    assert_eq!(progress, expected);

    let mut want = vec![0xEEu8; size as usize];
    for r in &extents {
        want[r.start as usize..r.end as usize].copy_from_slice(&pattern(r.clone()));
    }
    let mut got = vec![0u8; size as usize];
    dst.read_exact_at(&mut got, 0).unwrap();
    let first_diff = want.iter().zip(&got).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "device differs from the image");
    // And the backing file agrees (the fsync reached it).
    let mut backing = vec![0u8; size as usize];
    File::open(&d.backing)
        .unwrap()
        .read_exact_at(&mut backing, 0)
        .unwrap();
    assert!(backing == want, "backing file differs");
}

/// An image larger than the loop device is refused, naming both.
#[test]
fn loop_image_larger_than_device_is_refused() {
    if !privileged("loop_image_larger_than_device_is_refused") {
        return;
    }
    let d = Dev::new(4 * MIB, 4096);
    let img = tempfile::NamedTempFile::new().unwrap();
    img.as_file().set_len(8 * MIB).unwrap();
    let e = copy_extents(
        img.as_file(),
        img.path(),
        &d.open(),
        d.dev.path(),
        &mut scratchcrypt::sparse::no_progress,
    )
    .unwrap_err();
    assert!(matches!(e, SparseError::SourceTooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains(&d.dev.path().display().to_string()));
}

/// Both zeroing methods zero exactly the ranges on a loop device.
#[test]
fn loop_zero_ranges_both_methods() {
    if !privileged("loop_zero_ranges_both_methods") {
        return;
    }
    for method in [ZeroMethod::BlkZeroOut, ZeroMethod::Pwrite] {
        let size = 16 * MIB;
        let d = Dev::new(size, 4096);
        let dst = d.open();
        let ranges = [8 * MIB..12 * MIB, 4096..3 * 4096];
        let stats = zero_ranges_with(
            &dst,
            d.dev.path(),
            &ranges,
            method,
            &mut scratchcrypt::sparse::no_progress,
        )
        .unwrap();
        assert_eq!(stats.bytes_zeroed, 4 * MIB + 8192);
        assert_eq!(stats.method, method);
        let mut got = vec![0u8; size as usize];
        dst.read_exact_at(&mut got, 0).unwrap();
        for (i, &b) in got.iter().enumerate() {
            let zero = ranges.iter().any(|r| r.contains(&(i as u64)));
            assert_eq!(b, if zero { 0 } else { 0xEE }, "{method:?} byte {i}");
        }
    }
}

/// The device's logical block size is what writes are aligned to: a 512-aligned range is
/// refused on a 4096-byte-sector device and accepted on a 512-byte one.
#[test]
fn loop_alignment_follows_logical_block_size() {
    if !privileged("loop_alignment_follows_logical_block_size") {
        return;
    }
    let d = Dev::new(4 * MIB, 4096);
    let e = zero_ranges(
        &d.open(),
        d.dev.path(),
        &[512..4096],
        &mut scratchcrypt::sparse::no_progress,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            SparseError::Misaligned {
                block_size: 4096,
                ..
            }
        ),
        "{e:?}"
    );
    let d = Dev::new(4 * MIB, 512);
    let stats = zero_ranges(
        &d.open(),
        d.dev.path(),
        &[512..4096],
        &mut scratchcrypt::sparse::no_progress,
    )
    .unwrap();
    // On a block device, zero_ranges picks the block-device method (a regular file gets pwrite).
    assert_eq!(stats.method, scratchcrypt::sparse::BLOCK_DEVICE_METHOD);
    assert_eq!(stats.bytes_zeroed, 4096 - 512);
}

/// ramfs reports a whole file as data: the probe refuses it, naming ramfs.
#[test]
fn loop_probe_refuses_ramfs() {
    if !privileged("loop_probe_refuses_ramfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(_m) = mount("ramfs", dir.path(), "") else {
        return;
    };
    let e = check_holes_supported(dir.path(), 1 << 30).unwrap_err();
    assert!(matches!(e, SparseError::HolesNotReported { .. }), "{e:?}");
    assert!(e.to_string().contains("ramfs"), "{e}");
}

/// A tmpfs mounted here reports holes and takes a 16 TiB sparse image.
#[test]
fn loop_probe_accepts_mounted_tmpfs() {
    if !privileged("loop_probe_accepts_mounted_tmpfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(_m) = mount("tmpfs", dir.path(), "size=16m") else {
        return;
    };
    let h = check_holes_supported(dir.path(), 16 << 40).unwrap();
    assert_eq!(h.fs_type, "tmpfs");
}

/// A destination on a full file system fails at the write step with ENOSPC.
#[test]
fn loop_full_destination_fails_at_write() {
    if !privileged("loop_full_destination_fails_at_write") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(_m) = mount("tmpfs", dir.path(), "size=1m") else {
        return;
    };
    let img = tempfile::NamedTempFile::new().unwrap();
    img.as_file().set_len(8 * MIB).unwrap();
    img.as_file()
        .write_all_at(&pattern(0..4 * MIB), 2 * MIB)
        .unwrap();
    let dst_path = dir.path().join("dst");
    let dst = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&dst_path)
        .unwrap();
    dst.set_len(8 * MIB).unwrap();
    let e = copy_extents(
        img.as_file(),
        img.path(),
        &dst,
        &dst_path,
        &mut scratchcrypt::sparse::no_progress,
    )
    .unwrap_err();
    match &e {
        SparseError::Write { source, .. } => {
            assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{e:?}")
        }
        other => panic!("expected a write error, got {other:?}"),
    }
}
