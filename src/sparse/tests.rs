//! Unit tests of the extent copier on temp files with known patterns (no privileges needed).

// Slices of one range are the natural argument of `zero_ranges`, not a mistaken `vec![a..b]`.
#![allow(clippy::single_range_in_vec_init)]

use std::fs::{File, OpenOptions};
use std::ops::{ControlFlow, Range};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::class::ErrorClass;

const B: u64 = 4096;

/// A temp dir with a sparse source file and a destination file of the same size.
struct Pair {
    _dir: tempfile::TempDir,
    src_path: PathBuf,
    dst_path: PathBuf,
    src: File,
    dst: File,
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

/// Source of `size` bytes with `fill(offset)`-patterned data in `extents`; destination of
/// `dst_size` bytes filled with 0xEE (so that a missing write shows).
fn pair(size: u64, dst_size: u64, extents: &[Range<u64>]) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("src.img");
    let dst_path = dir.path().join("dst.img");
    let src = open_rw(&src_path);
    src.set_len(size).unwrap();
    for r in extents {
        src.write_all_at(&pattern(r.clone()), r.start).unwrap();
    }
    let dst = open_rw(&dst_path);
    dst.write_all_at(&vec![0xEE; dst_size as usize], 0).unwrap();
    Pair {
        _dir: dir,
        src_path,
        dst_path,
        src,
        dst,
    }
}

/// Bytes that differ at every offset (and are never zero), so misplaced data shows.
fn pattern(r: Range<u64>) -> Vec<u8> {
    r.map(|o| (o % 251) as u8 + 1).collect()
}

fn read_all(f: &File, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    f.read_exact_at(&mut v, 0).unwrap();
    v
}

fn extents_of(p: &Pair) -> Vec<Range<u64>> {
    data_extents(&p.src, &p.src_path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Copy and check: inside the (block-rounded) extents the destination equals the source,
/// outside them it still holds its old 0xEE bytes.
fn copy_and_compare(p: &Pair, size: u64, dst_size: u64, buffer: usize) -> CopyStats {
    let mut reported = 0;
    let stats =
        copy_extents_with_buffer(&p.src, &p.src_path, &p.dst, &p.dst_path, buffer, &mut |n| {
            reported += n;
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(reported, stats.bytes_copied);
    let src = read_all(&p.src, size);
    let dst = read_all(&p.dst, dst_size);
    let mut covered = vec![false; dst_size as usize];
    for r in extents_of(p) {
        let (s, e) = (r.start / B * B, r.end.div_ceil(B) * B);
        covered[s as usize..e as usize].fill(true);
    }
    for (i, &c) in covered.iter().enumerate() {
        let want = if c { src[i] } else { 0xEE };
        assert_eq!(dst[i], want, "byte {i}");
    }
    stats
}

/// An empty file has no extents, and copying it writes nothing.
#[test]
fn empty_file_has_no_extents() {
    let p = pair(0, 4 * B, &[]);
    assert!(extents_of(&p).is_empty());
    let stats = copy_and_compare(&p, 0, 4 * B, BUFFER_SIZE);
    assert_eq!((stats.bytes_copied, stats.extents), (0, 0));
}

/// A file that is all hole has no extents.
#[test]
fn all_hole_file_has_no_extents() {
    let p = pair(64 * B, 64 * B, &[]);
    assert!(extents_of(&p).is_empty());
    assert_eq!(
        copy_and_compare(&p, 64 * B, 64 * B, BUFFER_SIZE).bytes_copied,
        0
    );
}

/// Data at the start and in the very last block are both found and copied.
#[test]
fn data_at_start_and_at_very_end() {
    let size = 256 * B;
    let p = pair(size, size, &[0..B, size - B..size]);
    assert_eq!(extents_of(&p), vec![0..B, size - B..size]);
    let stats = copy_and_compare(&p, size, size, BUFFER_SIZE);
    assert_eq!((stats.bytes_copied, stats.extents), (2 * B, 2));
}

/// An extent larger than the buffer is copied in several chunks, byte for byte.
#[test]
fn extent_larger_than_buffer() {
    let size = 512 * B;
    let p = pair(size, size, &[8 * B..300 * B]);
    let stats = copy_and_compare(&p, size, size, 3 * B as usize);
    assert_eq!((stats.bytes_copied, stats.extents), (292 * B, 1));
}

/// A buffer size that is no multiple of the block size is rounded down to whole blocks: the
/// copy goes in chunks of exactly that many blocks (and never in a partial block).
#[test]
fn buffer_is_rounded_down_to_whole_blocks() {
    let size = 32 * B;
    let p = pair(size, size, &[2 * B..12 * B]);
    let mut chunks = Vec::new();
    copy_extents_with_buffer(
        &p.src,
        &p.src_path,
        &p.dst,
        &p.dst_path,
        3 * B as usize + 100,
        &mut |n| {
            chunks.push(n);
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(chunks, [3 * B, 3 * B, 3 * B, B]);
}

/// Many small extents with holes between them are all copied and the holes left alone.
#[test]
fn many_small_extents() {
    let size = 1024 * B;
    let extents: Vec<_> = (0..100)
        .map(|i| (i * 10 + 3) * B..(i * 10 + 4) * B)
        .collect();
    let p = pair(size, size, &extents);
    let stats = copy_and_compare(&p, size, size, BUFFER_SIZE);
    assert_eq!((stats.bytes_copied, stats.extents), (100 * B, 100));
}

/// A destination larger than the source keeps its bytes past the source's end.
#[test]
fn larger_destination_is_fine() {
    let p = pair(16 * B, 32 * B, &[0..16 * B]);
    copy_and_compare(&p, 16 * B, 32 * B, BUFFER_SIZE);
}

/// An extent boundary inside a block is rounded out to whole blocks (the hole part is copied
/// as zeros), and overlapping rounded extents are written once.
#[test]
fn unaligned_extent_is_rounded_out() {
    let size = 16 * B;
    let p = pair(size, size, &[]);
    // Data from mid-block 2 to mid-block 3 (the fs allocates whole blocks, so the extent is
    // reported as 2..4 blocks); the copy must cover whole blocks and bring the zeros along.
    p.src.write_all_at(&[7u8; 100], 2 * B + 1000).unwrap();
    p.src.write_all_at(&[9u8; 100], 3 * B + 50).unwrap();
    let stats = copy_and_compare(&p, size, size, BUFFER_SIZE);
    assert_eq!(stats.bytes_copied % B, 0);
    let dst = read_all(&p.dst, size);
    assert!(dst[2 * B as usize..2 * B as usize + 1000]
        .iter()
        .all(|&b| b == 0));
}

/// A character device has no extents to speak of: it is refused as a source.
#[test]
fn data_extents_refuses_char_devices() {
    let f = File::open("/dev/null").unwrap();
    assert!(matches!(
        data_extents(&f, Path::new("/dev/null")),
        Err(SparseError::NotBlockOrFile { .. })
    ));
}

/// A source larger than the destination is refused before anything is written, naming both.
#[test]
fn source_larger_than_destination() {
    let p = pair(32 * B, 16 * B, &[0..B]);
    let e = copy_extents(&p.src, &p.src_path, &p.dst, &p.dst_path, &mut no_progress).unwrap_err();
    assert!(matches!(e, SparseError::SourceTooLarge { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("src.img") && msg.contains("dst.img"), "{msg}");
    assert!(read_all(&p.dst, 16 * B).iter().all(|&b| b == 0xEE));
}

/// A source or destination size that is not a whole number of blocks is refused.
#[test]
fn unaligned_sizes_are_refused() {
    let p = pair(16 * B + 512, 32 * B, &[0..B]);
    let e = copy_extents(&p.src, &p.src_path, &p.dst, &p.dst_path, &mut no_progress).unwrap_err();
    assert!(matches!(e, SparseError::SizeNotAligned { size, .. } if size == 16 * B + 512));
    let p = pair(16 * B, 32 * B + 100, &[0..B]);
    let e = copy_extents(&p.src, &p.src_path, &p.dst, &p.dst_path, &mut no_progress).unwrap_err();
    assert!(matches!(e, SparseError::SizeNotAligned { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::InvalidInput);
}

/// A destination opened read-only fails at the write step, naming the path and offset.
#[test]
fn read_only_destination_fails_at_write() {
    let p = pair(16 * B, 16 * B, &[4 * B..5 * B]);
    let ro = File::open(&p.dst_path).unwrap();
    let e = copy_extents(&p.src, &p.src_path, &ro, &p.dst_path, &mut no_progress).unwrap_err();
    assert!(
        matches!(e, SparseError::Write { offset, .. } if offset == 4 * B),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("write "), "{e}");
    assert_eq!(e.class(), ErrorClass::Io);
}

/// A source opened write-only fails at the read step.
#[test]
fn unreadable_source_fails_at_read() {
    let p = pair(16 * B, 16 * B, &[4 * B..5 * B]);
    let wo = OpenOptions::new().write(true).open(&p.src_path).unwrap();
    let e = copy_extents(&wo, &p.src_path, &p.dst, &p.dst_path, &mut no_progress).unwrap_err();
    assert!(
        matches!(e, SparseError::Read { offset, .. } if offset == 4 * B),
        "{e:?}"
    );
}

/// A character device such as /dev/full is not accepted as destination.
#[test]
fn char_device_destination_is_refused() {
    let p = pair(16 * B, 16 * B, &[0..B]);
    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    let e = copy_extents(
        &p.src,
        &p.src_path,
        &full,
        Path::new("/dev/full"),
        &mut no_progress,
    )
    .unwrap_err();
    assert!(matches!(e, SparseError::NotBlockOrFile { .. }), "{e:?}");
}

/// A source that ends inside an extent (a zero-length read) is an error, not success.
#[test]
fn truncated_source_is_an_error() {
    let p = pair(16 * B, 16 * B, &[]);
    let e = super::copy::read_full_at(&p.src, &p.src_path, &mut [0u8; 4096], 16 * B, 17 * B)
        .unwrap_err();
    assert!(matches!(e, SparseError::Truncated { .. }), "{e:?}");
}

/// A file whose every read and write is short (at most one block) and whose every other call
/// fails with EINTR, or with EIO from the `fail_from`-th call on: what a regular file never
/// does, but a block device, a FUSE file or a signal can.
struct Choppy {
    data: std::cell::RefCell<Vec<u8>>,
    calls: std::cell::Cell<u32>,
    fail_from: u32,
}

impl Choppy {
    fn new(data: Vec<u8>) -> Choppy {
        Choppy {
            data: std::cell::RefCell::new(data),
            calls: std::cell::Cell::new(0),
            fail_from: u32::MAX,
        }
    }

    /// Count the call; EINTR on odd calls, the hard error from `fail_from` on. A hard error
    /// retried again and again is a bug: stop the test instead of spinning.
    fn call(&self) -> std::io::Result<()> {
        let n = self.calls.get() + 1;
        self.calls.set(n);
        assert!(n < 1000, "an error was retried {n} times");
        if n >= self.fail_from {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        if n % 2 == 1 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        Ok(())
    }
}

impl FileExt for Choppy {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.call()?;
        let data = self.data.borrow();
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(B as usize).min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
        self.call()?;
        let mut data = self.data.borrow_mut();
        let n = buf.len().min(B as usize);
        let start = offset as usize;
        data[start..start + n].copy_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Short reads and writes continue where the last one stopped, EINTR is retried, and any
/// other error is returned at once.
#[test]
fn short_and_interrupted_io_is_retried_in_place() {
    let pattern: Vec<u8> = (0..16 * B).map(|i| (i / 7) as u8).collect();
    let src = Choppy::new(pattern.clone());
    let mut buf = vec![0u8; 5 * B as usize];
    super::copy::read_full_at(&src, Path::new("choppy"), &mut buf, 8 * B, 13 * B).unwrap();
    assert_eq!(buf, pattern[8 * B as usize..13 * B as usize]);
    assert!(src.calls.get() >= 10, "five short reads, five EINTRs");

    let dst = Choppy::new(vec![0xEE; 16 * B as usize]);
    super::copy::write_full_at(&dst, Path::new("choppy"), &buf, 2 * B, B).unwrap();
    let written = dst.data.borrow();
    assert_eq!(written[2 * B as usize..7 * B as usize], buf[..]);
    assert!(written[..2 * B as usize].iter().all(|&b| b == 0xEE));
    assert!(written[7 * B as usize..].iter().all(|&b| b == 0xEE));

    let mut failing = Choppy::new(pattern);
    failing.fail_from = 4;
    let e =
        super::copy::read_full_at(&failing, Path::new("choppy"), &mut buf, 0, 5 * B).unwrap_err();
    assert!(
        matches!(e, SparseError::Read { offset, .. } if offset == B),
        "{e:?}"
    );
    assert_eq!(failing.calls.get(), 4);
    failing.calls.set(0);
    let e = super::copy::write_full_at(&failing, Path::new("choppy"), &buf, 0, B).unwrap_err();
    assert!(
        matches!(e, SparseError::Write { offset, .. } if offset == B),
        "{e:?}"
    );
    assert_eq!(failing.calls.get(), 4);
}

/// A write that would start or end inside a block is refused before it reaches the kernel.
#[test]
fn misaligned_write_is_refused() {
    let p = pair(16 * B, 16 * B, &[]);
    for (off, len) in [(512, 4096), (0, 1000)] {
        let e = super::copy::write_full_at(&p.dst, &p.dst_path, &vec![1; len], off, B).unwrap_err();
        assert!(matches!(e, SparseError::Misaligned { .. }), "{e:?}");
    }
    assert!(read_all(&p.dst, 16 * B).iter().all(|&b| b == 0xEE));
}

/// zero_ranges writes zeros over exactly the given ranges, in any order, skipping empty ones.
#[test]
fn zero_ranges_zeroes_exactly_the_ranges() {
    let p = pair(0, 64 * B, &[]);
    let ranges = [40 * B..64 * B, 0..B, 10 * B..10 * B, 3 * B..9 * B];
    let mut reported = 0;
    let stats = zero_ranges(&p.dst, &p.dst_path, &ranges, &mut |n| {
        reported += n;
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!((stats.bytes_zeroed, stats.ranges), (31 * B, 3));
    assert_eq!(stats.method, ZeroMethod::Pwrite);
    assert_eq!(reported, 31 * B);
    let dst = read_all(&p.dst, 64 * B);
    for (i, &b) in dst.iter().enumerate() {
        let i = i as u64;
        let zero = i < B || (3 * B..9 * B).contains(&i) || i >= 40 * B;
        assert_eq!(b, if zero { 0 } else { 0xEE }, "byte {i}");
    }
}

/// Zeroing a regular file allocates the blocks: they are written, not left as holes.
#[test]
fn zero_ranges_writes_instead_of_punching() {
    let p = pair(0, 0, &[]);
    p.dst.set_len(64 * B).unwrap();
    zero_ranges(&p.dst, &p.dst_path, &[8 * B..16 * B], &mut no_progress).unwrap();
    let ext: Vec<_> = data_extents(&p.dst, &p.dst_path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ext, vec![8 * B..16 * B]);
}

/// Overlapping, out-of-bounds, inverted and misaligned ranges are refused before writing.
#[test]
fn zero_ranges_validation() {
    let p = pair(0, 16 * B, &[]);
    let z = |r: &[Range<u64>]| zero_ranges(&p.dst, &p.dst_path, r, &mut no_progress).unwrap_err();
    assert!(matches!(
        z(&[4 * B..8 * B, 0..5 * B]),
        SparseError::RangesOverlap { .. }
    ));
    assert!(matches!(
        z(&[8 * B..17 * B]),
        SparseError::RangeOutOfBounds { .. }
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = [8 * B..4 * B];
    assert!(matches!(z(&inverted), SparseError::RangeOutOfBounds { .. }));
    // Ranges that touch do not overlap.
    let touching = zero_ranges(
        &p.dst,
        &p.dst_path,
        &[2 * B..3 * B, B..2 * B],
        &mut no_progress,
    )
    .unwrap();
    assert_eq!((touching.bytes_zeroed, touching.ranges), (2 * B, 2));
    // The refusal names the range as given: its start and its length.
    assert!(matches!(
        z(&[B + 512..3 * B]),
        SparseError::Misaligned { offset, len, block_size: B, .. }
            if offset == B + 512 && len == 2 * B - 512
    ));
    assert!(matches!(
        z(&[2 * B..3 * B + 512]),
        SparseError::Misaligned { offset, len, block_size: B, .. }
            if offset == 2 * B && len == B + 512
    ));
    let dst = read_all(&p.dst, 16 * B);
    assert!(dst[B as usize..3 * B as usize].iter().all(|&b| b == 0));
    assert!(dst[..B as usize].iter().all(|&b| b == 0xEE));
    assert!(dst[3 * B as usize..].iter().all(|&b| b == 0xEE));
}

/// BLKZEROOUT on a regular file fails with an error naming the zero step.
#[test]
fn blkzeroout_on_a_file_is_an_error() {
    let p = pair(0, 16 * B, &[]);
    let e = zero_ranges_with(
        &p.dst,
        &p.dst_path,
        &[0..B],
        ZeroMethod::BlkZeroOut,
        &mut no_progress,
    )
    .unwrap_err();
    assert!(matches!(e, SparseError::Zero { .. }), "{e:?}");
}

/// The temp dir of the tests (ext4 or tmpfs here) reports holes.
#[test]
fn probe_accepts_a_hole_reporting_dir() {
    let dir = tempfile::tempdir().unwrap();
    let h = check_holes_supported(dir.path(), 1 << 30).unwrap();
    assert!(h.first_hole >= 4096 && h.first_hole < 1 << 30, "{h:?}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "probe left behind"
    );
}

/// /dev/shm is a tmpfs, which reports holes.
#[test]
fn probe_accepts_tmpfs() {
    let h = check_holes_supported(Path::new("/dev/shm"), 1 << 40).unwrap();
    assert_eq!(h.fs_type, "tmpfs");
}

/// On ext4 (max file size 16 TiB - 4 KiB) a 16 TiB image is refused, naming the fs type.
#[test]
fn probe_refuses_too_large_image_on_ext4() {
    let dir = tempfile::tempdir().unwrap();
    let h = check_holes_supported(dir.path(), 1 << 20).unwrap();
    if h.fs_type != "ext2/3/4"
        && crate::test_skip::cannot_run(
            "probe_refuses_too_large_image_on_ext4",
            &format!("the temp dir is {}, not ext4", h.fs_type),
        )
    {
        return;
    }
    let e = check_holes_supported(dir.path(), 16 << 40).unwrap_err();
    assert!(matches!(e, SparseError::FileTooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("ext2/3/4"), "{e}");
}

/// A missing directory fails at the create step.
#[test]
fn probe_of_missing_dir_fails() {
    let e = check_holes_supported(Path::new("/nonexistent/dir"), 1 << 20).unwrap_err();
    assert!(matches!(e, SparseError::Probe { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::InvalidInput);
}

/// statfs magics get names (checked against libc's copies of `linux/magic.h`, so a wrong or
/// missing magic shows), unknown ones their number.
#[test]
#[allow(clippy::unnecessary_cast)] // the constants' type differs between targets
fn fs_type_names() {
    for (magic, name) in [
        (libc::EXT4_SUPER_MAGIC as i64, "ext2/3/4"),
        (libc::TMPFS_MAGIC as i64, "tmpfs"),
        (0x8584_58f6, "ramfs"), // RAMFS_MAGIC (not in libc)
        (libc::XFS_SUPER_MAGIC as i64, "xfs"),
        (libc::BTRFS_SUPER_MAGIC as i64, "btrfs"),
        (libc::OVERLAYFS_SUPER_MAGIC as i64, "overlayfs"),
        (libc::NFS_SUPER_MAGIC as i64, "nfs"),
        (libc::FUSE_SUPER_MAGIC as i64, "fuse"),
        (libc::MSDOS_SUPER_MAGIC as i64, "vfat"),
        (0x0102_1997, "v9fs"), // V9FS_MAGIC (not in libc)
        // OpenZFS's ZFS_SUPER_MAGIC (not in linux/magic.h).
        (0x2fc1_2fc1, "zfs"),
    ] {
        assert_eq!(fs_type_name(magic), name, "{magic:#x}");
    }
    assert_eq!(fs_type_name(0x1234), "unknown (f_type 0x1234)");
}

/// The probe file is at least 8 MiB even for a tiny image, so that a hole follows its first
/// block on any file system (a probe the image's size would be all data, and refused).
#[test]
fn probe_of_a_tiny_image_still_finds_a_hole() {
    let h = check_holes_supported(Path::new("/dev/shm"), 4096).unwrap();
    assert_eq!(h.fs_type, "tmpfs");
    assert_eq!(h.first_hole, 4096);
}

/// A progress callback that breaks stops the zeroing and the copy after that chunk.
#[test]
fn a_breaking_progress_stops_the_work() {
    let p = pair(16 * B, 16 * B, &[0..16 * B]);
    let mut calls = 0;
    let e = copy_extents_with_buffer(
        &p.src,
        &p.src_path,
        &p.dst,
        &p.dst_path,
        B as usize,
        &mut |_| {
            calls += 1;
            std::ops::ControlFlow::Break(())
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, SparseError::Stopped { offset, .. } if offset == B),
        "{e:?}"
    );
    assert_eq!(calls, 1);
    assert_eq!(e.class(), ErrorClass::Interrupted);
    let e = zero_ranges(&p.dst, &p.dst_path, &[0..16 * B], &mut |_| {
        std::ops::ControlFlow::Break(())
    })
    .unwrap_err();
    assert!(matches!(e, SparseError::Stopped { .. }), "{e:?}");
}
