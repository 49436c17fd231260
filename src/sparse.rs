//! The extent copier: put a sparse ext4 image onto the mapping, and zero given ranges of it.
//!
//! # Why extents, and why every block of them
//! The image is a sparse file the size of the device. Writing the whole file would write the
//! whole device (hours at 16 TiB); writing only its data extents takes a second. The extents are
//! found with `lseek(SEEK_DATA)` / `lseek(SEEK_HOLE)` ([`data_extents`]). Every block inside an
//! extent is copied, zeros included: a zero block that mkfs wrote (a bitmap, say) must reach the
//! unwiped integrity device, or the kernel's first read of it fails with EIO.
//!
//! # Why the writes are block-aligned
//! A write through the page cache that covers only part of a logical block makes the kernel read
//! the rest of the block first. On an unwiped integrity device that read fails. So
//! [`copy_extents`] and [`zero_ranges`] check that every `pwrite` starts and ends on a multiple of
//! the destination's logical block size and fail with [`SparseError::Misaligned`] otherwise.
//! An extent whose boundary falls inside a block is rounded *out* to whole blocks: the extra
//! bytes are read from the source, where a hole reads as zeros, so the copy stays exact. The
//! source and destination sizes must be multiples of the block size, and the source must not be
//! larger than the destination; both are checked before anything is written.
//!
//! # Why zeroing writes
//! Ranges that must read as zeros (inode tables, journal) are zeroed by writing: never by discard
//! or punch-hole, because a discarded block on an integrity device has no valid tag. On a block
//! device [`zero_ranges`] uses `BLKZEROOUT`, which the kernel turns into WRITE_ZEROES or into
//! zero-page writes, never into a discard (see [`ZeroMethod`] for the measurement).
//!
//! # Ordering and durability
//! The pipeline calls [`zero_ranges`] and then [`copy_extents`] on the same device. With
//! `pwrite` zeroing both go through the same page cache in program order: a later write to a
//! page replaces its cached content, so writeback can never put the zeros over the image.
//! `BLKZEROOUT` is synchronous (it waits for the zeroing bios) and drops the cached pages of the
//! range, so the image written after it lands on zeroed blocks. Each function ends with `fsync`
//! of the destination, so each one's writes are durable when it returns.
//!
//! # Errors the Go original ignored
//! A short read is retried, and a read of zero bytes inside an extent is an error (the source
//! shrank underneath us). Every `lseek` error other than `ENXIO` ("no data after this offset")
//! is an error, and `EINVAL` from `SEEK_DATA` at offset 0 of a non-empty file means the file
//! system cannot report holes ([`ExtentError::Unsupported`]). `EINTR` is retried.
//! A file system that reports a whole file as data (ramfs) cannot be detected from the extents
//! alone: [`check_holes_supported`] probes the temp directory before the image is built.

use std::io;
use std::path::PathBuf;

use crate::class::ErrorClass;
use crate::extent::ExtentError;

mod copy;
mod probe;
mod zero;

pub use crate::extent::Extents;
pub use copy::copy_extents;
#[cfg(any(test, feature = "test-support"))]
pub use copy::{copy_extents_with_buffer, CopyStats, BUFFER_SIZE};
pub use probe::check_holes_supported;
#[cfg(any(test, feature = "test-support"))]
pub use probe::{fs_type_name, HoleSupport};
/// The data extents of `file` (whose name `path` is used in errors).
///
/// `file` may be a regular file or a block device (a block device is one extent: the kernel
/// reports it all as data).
pub fn data_extents<'a>(
    file: &'a std::fs::File,
    path: &'a std::path::Path,
) -> Result<Extents<'a>, SparseError> {
    Ok(Extents::new(file, path, copy::size_of(file, path)?))
}

pub use zero::{zero_ranges, zero_ranges_with, ZeroMethod};
#[cfg(any(test, feature = "test-support"))]
pub use zero::{ZeroStats, BLOCK_DEVICE_METHOD};

/// A progress callback for [`zero_ranges`] and [`copy_extents`] that ignores the counts and
/// never stops the work.
pub fn no_progress(_bytes: u64) -> std::ops::ControlFlow<()> {
    std::ops::ControlFlow::Continue(())
}

/// Errors of the extent copier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SparseError {
    /// Walking the source's data extents failed.
    #[error(transparent)]
    Extent(#[from] ExtentError),
    /// `pread` failed.
    #[error("read {} at offset {offset}", path.display())]
    Read {
        /// The source file.
        path: PathBuf,
        /// The offset of the failed read.
        offset: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The source ended inside a data extent: it was truncated while being copied.
    #[error("read {}: end of file at offset {offset}, inside a data extent ending at {extent_end} (truncated while copying?)", path.display())]
    Truncated {
        /// The source file.
        path: PathBuf,
        /// Where the read returned no bytes.
        offset: u64,
        /// Where the extent was supposed to end.
        extent_end: u64,
    },
    /// `pwrite` failed, or wrote nothing.
    #[error("write {} at offset {offset}", path.display())]
    Write {
        /// The destination.
        path: PathBuf,
        /// The offset of the failed write.
        offset: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The progress callback asked to stop (the caller was interrupted); what was written so far
    /// was not flushed.
    #[error("stopped writing {} at offset {offset}", path.display())]
    Stopped {
        /// The destination.
        path: PathBuf,
        /// Where the work stopped (the end of the last chunk written).
        offset: u64,
    },
    /// `BLKZEROOUT` failed.
    #[error("zero {} bytes {offset}..{}", path.display(), offset + len)]
    Zero {
        /// The destination.
        path: PathBuf,
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `fsync` of the destination failed.
    #[error("fsync {}", path.display())]
    Fsync {
        /// The destination.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Querying the kind, size or block size of a file or device failed.
    #[error("query the {what} of {}", path.display())]
    Query {
        /// What was asked ("size", "logical block size", "file type").
        what: &'static str,
        /// The file or device.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file is neither a block device nor a regular file.
    #[error("{}: not a block device or regular file", path.display())]
    NotBlockOrFile {
        /// The file.
        path: PathBuf,
    },
    /// The source is larger than the destination.
    #[error("source {} ({src_size} bytes) is larger than destination {} ({dst_size} bytes)", src.display(), dst.display())]
    SourceTooLarge {
        /// The source.
        src: PathBuf,
        /// Its size in bytes.
        src_size: u64,
        /// The destination.
        dst: PathBuf,
        /// Its size in bytes.
        dst_size: u64,
    },
    /// A size is not a multiple of the destination's block size.
    #[error("{}: size {size} is not a multiple of the destination block size {block_size}", path.display())]
    SizeNotAligned {
        /// The source or destination.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The destination's logical block size.
        block_size: u64,
    },
    /// A write would start or end inside a logical block of the destination.
    #[error("{}: write of {len} bytes at offset {offset} is not aligned to the block size {block_size}", path.display())]
    Misaligned {
        /// The destination.
        path: PathBuf,
        /// Start of the write.
        offset: u64,
        /// Length of the write.
        len: u64,
        /// The destination's logical block size.
        block_size: u64,
    },
    /// A range to zero is inverted or reaches beyond the end of the destination.
    #[error("{}: zero range {start}..{end} is invalid for a destination of {size} bytes", path.display())]
    RangeOutOfBounds {
        /// The destination.
        path: PathBuf,
        /// Start of the range.
        start: u64,
        /// End of the range.
        end: u64,
        /// Size of the destination.
        size: u64,
    },
    /// Two ranges to zero overlap.
    #[error("{}: zero ranges {}..{} and {}..{} overlap", path.display(), first.start, first.end, second.start, second.end)]
    RangesOverlap {
        /// The destination.
        path: PathBuf,
        /// The range that starts first.
        first: std::ops::Range<u64>,
        /// The range that starts inside it.
        second: std::ops::Range<u64>,
    },
    /// A step of the temp-directory probe failed.
    #[error("probe hole support in {}: {step}", dir.display())]
    Probe {
        /// The directory probed.
        dir: PathBuf,
        /// The step ("create the probe file", ...).
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The temp directory's file system reports holes as data (ramfs): the copy would write
    /// the whole device.
    #[error("{}: the {fs_type} file system does not report holes (SEEK_HOLE found none), the copy would write every block; use a tmpfs or ext4 temp dir", dir.display())]
    HolesNotReported {
        /// The directory probed.
        dir: PathBuf,
        /// The file-system type from `statfs`.
        fs_type: String,
    },
    /// The temp directory's file system cannot hold a file as large as the image.
    #[error("{}: the {fs_type} file system cannot hold a {size}-byte image file", dir.display())]
    FileTooLarge {
        /// The directory probed.
        dir: PathBuf,
        /// The file-system type from `statfs`.
        fs_type: String,
        /// The image size asked for.
        size: u64,
        /// The OS error (`EFBIG` usually).
        #[source]
        source: io::Error,
    },
}

impl SparseError {
    /// The class of this error (for exit statuses).
    pub fn class(&self) -> ErrorClass {
        use SparseError::*;
        match self {
            Extent(e) => e.class(),
            HolesNotReported { .. } | FileTooLarge { .. } => ErrorClass::Unsupported,
            NotBlockOrFile { .. }
            | SourceTooLarge { .. }
            | SizeNotAligned { .. }
            | Misaligned { .. }
            | RangeOutOfBounds { .. }
            | RangesOverlap { .. } => ErrorClass::InvalidInput,
            Query { source, .. } | Probe { source, .. } => crate::class::class_of_io(source),
            Read { .. } | Truncated { .. } | Write { .. } | Zero { .. } | Fsync { .. } => {
                ErrorClass::Io
            }
            Stopped { .. } => ErrorClass::Interrupted,
        }
    }
}

#[cfg(test)]
mod tests;
