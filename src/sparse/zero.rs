//! `zero_ranges`: make ranges of the destination read as zeros by writing them.

use std::fs::File;
use std::ops::{ControlFlow, Range};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::blockdev::{self, Kind};

use super::copy::{fsync, geometry, write_full_at, BUFFER_SIZE};
use super::SparseError;

/// How ranges are zeroed. Both write every block; neither discards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroMethod {
    /// The `BLKZEROOUT` ioctl (block devices only): the kernel issues WRITE_ZEROES, or writes
    /// zero pages itself where the device lacks it (dm-crypt does), with `BLKDEV_ZERO_NOUNMAP`
    /// so that it never unmaps (`block/blk-lib.c`, `block/ioctl.c`).
    BlkZeroOut,
    /// `pwrite` of a zero buffer through the page cache.
    Pwrite,
}

/// The method [`zero_ranges`] uses on block devices. Measured in `benches/sparse.rs`
/// (`docs/BENCHMARKS.md`, "Sparse copy"): on a loop device whose backing store makes the kernel
/// write zero pages itself (as it must on dm-crypt) `BLKZEROOUT` was 3.2x faster than `pwrite`
/// of a zero buffer, since no zeros are copied from user space.
pub const BLOCK_DEVICE_METHOD: ZeroMethod = ZeroMethod::BlkZeroOut;

/// Largest single `BLKZEROOUT` request, so that progress is reported regularly.
const ZEROOUT_CHUNK: u64 = 256 << 20;

/// What a zeroing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroStats {
    /// Bytes zeroed.
    pub bytes_zeroed: u64,
    /// Non-empty ranges zeroed.
    pub ranges: u64,
    /// The method used.
    pub method: ZeroMethod,
    /// Time taken, fsync included.
    pub elapsed: Duration,
}

/// Zero the byte `ranges` of `dst` by writing, then `fsync` it.
///
/// Ranges may come in any order; each must start and end on a multiple of the destination's
/// logical block size (4096 for a regular file) and lie inside it, and no two may overlap.
/// Empty ranges are skipped. Block devices use [`BLOCK_DEVICE_METHOD`], regular files
/// [`ZeroMethod::Pwrite`]. `progress` is called with the bytes zeroed since its last call; when it
/// returns `Break`, the work stops there with [`SparseError::Stopped`] (no fsync).
pub fn zero_ranges(
    dst: &File,
    dst_path: &Path,
    ranges: &[Range<u64>],
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<ZeroStats, SparseError> {
    let (_, _, kind) = geometry(dst, dst_path)?;
    let method = match kind {
        Kind::Block => BLOCK_DEVICE_METHOD,
        _ => ZeroMethod::Pwrite,
    };
    zero_ranges_with(dst, dst_path, ranges, method, progress)
}

/// [`zero_ranges`] with an explicit method (for benchmarks and tests).
pub fn zero_ranges_with(
    dst: &File,
    dst_path: &Path,
    ranges: &[Range<u64>],
    method: ZeroMethod,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<ZeroStats, SparseError> {
    let started = Instant::now();
    let (size, block, _) = geometry(dst, dst_path)?;
    let ranges = validate(dst_path, ranges, size, block)?;
    let mut stats = ZeroStats {
        bytes_zeroed: 0,
        ranges: 0,
        method,
        elapsed: Duration::ZERO,
    };
    let zeros = match method {
        ZeroMethod::Pwrite if !ranges.is_empty() => vec![0u8; BUFFER_SIZE],
        _ => Vec::new(),
    };
    for r in &ranges {
        let mut offset = r.start;
        while offset < r.end {
            let n = match method {
                ZeroMethod::BlkZeroOut => {
                    let n = (r.end - offset).min(ZEROOUT_CHUNK);
                    blockdev::zero_out(dst, offset, n).map_err(|source| SparseError::Zero {
                        path: dst_path.to_path_buf(),
                        offset,
                        len: n,
                        source,
                    })?;
                    n
                }
                ZeroMethod::Pwrite => {
                    let n = (r.end - offset).min(zeros.len() as u64);
                    let len = usize::try_from(n).unwrap_or(zeros.len());
                    write_full_at(dst, dst_path, &zeros[..len], offset, block)?;
                    n
                }
            };
            offset += n;
            stats.bytes_zeroed += n;
            if progress(n).is_break() {
                return Err(SparseError::Stopped {
                    path: dst_path.to_path_buf(),
                    offset,
                });
            }
        }
        stats.ranges += 1;
    }
    fsync(dst, dst_path)?;
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Check the ranges against the destination and return the non-empty ones sorted by start.
fn validate(
    path: &Path,
    ranges: &[Range<u64>],
    size: u64,
    block: u64,
) -> Result<Vec<Range<u64>>, SparseError> {
    let mut sorted = Vec::with_capacity(ranges.len());
    for r in ranges {
        if r.start > r.end || r.end > size {
            return Err(SparseError::RangeOutOfBounds {
                path: path.to_path_buf(),
                start: r.start,
                end: r.end,
                size,
            });
        }
        if !r.start.is_multiple_of(block) || !r.end.is_multiple_of(block) {
            return Err(SparseError::Misaligned {
                path: path.to_path_buf(),
                offset: r.start,
                len: r.end - r.start,
                block_size: block,
            });
        }
        if r.start < r.end {
            sorted.push(r.clone());
        }
    }
    sorted.sort_by_key(|r| r.start);
    for pair in sorted.windows(2) {
        if pair[1].start < pair[0].end {
            return Err(SparseError::RangesOverlap {
                path: path.to_path_buf(),
                first: pair[0].clone(),
                second: pair[1].clone(),
            });
        }
    }
    Ok(sorted)
}
