//! `copy_extents` and the block-aligned `pread`/`pwrite` loops it shares with zeroing.

use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::blockdev::{self, Kind};

use super::{data_extents, SparseError};

/// Size of the one copy buffer: large enough that a copy is a few big writes per extent, small
/// enough to stay in cache between the read and the write (1 MiB did better than 4 MiB in
/// `benches/sparse.rs`, see docs/BENCHMARKS.md). A multiple of every logical block size.
pub const BUFFER_SIZE: usize = 1 << 20;

/// The block size assumed for a regular-file destination: the page size, which is the unit
/// of the page cache's read-modify-write (and what mke2fs images are aligned to).
pub(super) const FILE_BLOCK_SIZE: u64 = 4096;

/// What a copy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyStats {
    /// Bytes written to the destination (extents rounded out to whole blocks).
    pub bytes_copied: u64,
    /// Data extents copied (after rounding; extents that merged count once).
    pub extents: u64,
    /// Time taken, fsync included.
    pub elapsed: Duration,
}

/// Size in bytes of a regular file or block device.
pub(super) fn size_of(file: &File, path: &Path) -> Result<u64, SparseError> {
    let query = |what, source| SparseError::Query {
        what,
        path: path.to_path_buf(),
        source,
    };
    match blockdev::kind(file).map_err(|e| query("file type", e))? {
        Kind::Block => blockdev::size_bytes(file).map_err(|e| query("size", e)),
        Kind::Regular => Ok(file.metadata().map_err(|e| query("size", e))?.len()),
        _ => Err(SparseError::NotBlockOrFile {
            path: path.to_path_buf(),
        }),
    }
}

/// Size and write alignment of a destination: a block device's logical block size, or
/// [`FILE_BLOCK_SIZE`] for a regular file.
pub(super) fn geometry(file: &File, path: &Path) -> Result<(u64, u64, Kind), SparseError> {
    let query = |what, source| SparseError::Query {
        what,
        path: path.to_path_buf(),
        source,
    };
    let kind = blockdev::kind(file).map_err(|e| query("file type", e))?;
    let block = match kind {
        Kind::Block => u64::from(
            blockdev::logical_block_size(file).map_err(|e| query("logical block size", e))?,
        ),
        Kind::Regular => FILE_BLOCK_SIZE,
        _ => {
            return Err(SparseError::NotBlockOrFile {
                path: path.to_path_buf(),
            })
        }
    };
    let size = size_of(file, path)?;
    if !size.is_multiple_of(block) {
        return Err(SparseError::SizeNotAligned {
            path: path.to_path_buf(),
            size,
            block_size: block,
        });
    }
    Ok((size, block, kind))
}

/// Read exactly `buf.len()` bytes at `offset`, retrying short reads and `EINTR`. A read of zero
/// bytes means the source ended inside the extent that ends at `extent_end`.
pub(super) fn read_full_at(
    file: &impl FileExt,
    path: &Path,
    mut buf: &mut [u8],
    mut offset: u64,
    extent_end: u64,
) -> Result<(), SparseError> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => {
                return Err(SparseError::Truncated {
                    path: path.to_path_buf(),
                    offset,
                    extent_end,
                })
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(SparseError::Read {
                    path: path.to_path_buf(),
                    offset,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Write all of `buf` at `offset`, retrying short writes and `EINTR`. Every single `pwrite`
/// must start and end on a multiple of `block`: a short write that stops inside a block makes
/// the next attempt misaligned, which is an error rather than a read-modify-write.
pub(super) fn write_full_at(
    file: &impl FileExt,
    path: &Path,
    mut buf: &[u8],
    mut offset: u64,
    block: u64,
) -> Result<(), SparseError> {
    while !buf.is_empty() {
        let len = buf.len() as u64;
        if !offset.is_multiple_of(block) || !len.is_multiple_of(block) {
            return Err(SparseError::Misaligned {
                path: path.to_path_buf(),
                offset,
                len,
                block_size: block,
            });
        }
        match file.write_at(buf, offset) {
            Ok(0) => {
                return Err(SparseError::Write {
                    path: path.to_path_buf(),
                    offset,
                    source: io::Error::from(io::ErrorKind::WriteZero),
                })
            }
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(SparseError::Write {
                    path: path.to_path_buf(),
                    offset,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// `fsync` the destination.
pub(super) fn fsync(file: &File, path: &Path) -> Result<(), SparseError> {
    file.sync_all().map_err(|source| SparseError::Fsync {
        path: path.to_path_buf(),
        source,
    })
}

/// Copy every data extent of `src` to the same offset of `dst`, then `fsync` `dst`.
///
/// `dst` is a block device or a regular file at least as large as `src`; both sizes must be
/// multiples of `dst`'s logical block size (4096 for a regular file). Extents are rounded out
/// to whole blocks. `progress` is called with the bytes written since its last call; when it returns
/// `Break`, the copy stops there with [`SparseError::Stopped`] (no fsync).
pub fn copy_extents(
    src: &File,
    src_path: &Path,
    dst: &File,
    dst_path: &Path,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<CopyStats, SparseError> {
    copy_extents_with_buffer(src, src_path, dst, dst_path, BUFFER_SIZE, progress)
}

/// [`copy_extents`] with a buffer of `buffer_size` bytes (rounded down to whole blocks, at least
/// one block), for tests and benchmarks.
pub fn copy_extents_with_buffer(
    src: &File,
    src_path: &Path,
    dst: &File,
    dst_path: &Path,
    buffer_size: usize,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<CopyStats, SparseError> {
    let started = Instant::now();
    let (dst_size, block, _) = geometry(dst, dst_path)?;
    let src_size = size_of(src, src_path)?;
    if src_size > dst_size {
        return Err(SparseError::SourceTooLarge {
            src: src_path.to_path_buf(),
            src_size,
            dst: dst_path.to_path_buf(),
            dst_size,
        });
    }
    if !src_size.is_multiple_of(block) {
        return Err(SparseError::SizeNotAligned {
            path: src_path.to_path_buf(),
            size: src_size,
            block_size: block,
        });
    }
    let buffer_blocks = (buffer_size as u64 / block).max(1);
    let buffer_len = usize::try_from(buffer_blocks * block).unwrap_or(BUFFER_SIZE);
    let mut buf: Vec<u8> = Vec::new();

    let mut stats = CopyStats {
        bytes_copied: 0,
        extents: 0,
        elapsed: Duration::ZERO,
    };
    // End of what has been copied: rounding out may make an extent overlap the previous one.
    let mut copied_to = 0u64;
    for extent in data_extents(src, src_path)? {
        let extent = extent?;
        let start = (extent.start / block * block).max(copied_to);
        // `src_size` is a multiple of `block` and extents end at or before it, so rounding up
        // stays inside the source, and the source fits in the destination.
        let end = extent.end.div_ceil(block) * block;
        if start >= end {
            continue;
        }
        if buf.is_empty() {
            buf = vec![0u8; buffer_len];
        }
        stats.extents += 1;
        let mut offset = start;
        while offset < end {
            let n = usize::try_from((end - offset).min(buffer_len as u64)).unwrap_or(buffer_len);
            let chunk = &mut buf[..n];
            read_full_at(src, src_path, chunk, offset, end)?;
            write_full_at(dst, dst_path, chunk, offset, block)?;
            offset += n as u64;
            stats.bytes_copied += n as u64;
            if progress(n as u64).is_break() {
                return Err(SparseError::Stopped {
                    path: dst_path.to_path_buf(),
                    offset,
                });
            }
        }
        copied_to = end;
    }
    fsync(dst, dst_path)?;
    stats.elapsed = started.elapsed();
    Ok(stats)
}
