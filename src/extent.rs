//! Byte ranges, and the data extents of a sparse file from `lseek(SEEK_DATA/SEEK_HOLE)`.
//!
//! # Why one iterator for everyone
//! The ext4 builder ([`crate::format`]) counts the image's data with it, and the copier
//! ([`crate::sparse`]) writes exactly those extents, so the plan's byte count is what the copy
//! will write. Every `lseek` error other than `ENXIO` ("no data after this offset") is an
//! error, and `EINVAL` from `SEEK_DATA` at offset 0 means the file system cannot report holes
//! ([`ExtentError::Unsupported`]): the Go original treated every error as the end of the data.
//!
//! ```
//! use std::io::Write;
//! use scratchcrypt::extent::Extents;
//!
//! let mut file = tempfile::tempfile()?;
//! file.write_all(&[1u8; 4096])?;
//! file.set_len(1 << 20)?;
//! let path = std::path::Path::new("sparse.img");
//! let extents: Vec<_> = Extents::new(&file, path, 1 << 20).collect::<Result<_, _>>()?;
//! assert_eq!(extents.first().map(|r| r.start), Some(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use nix::unistd::{lseek, Whence};
use serde::Serialize;

use crate::class::{class_of_io, ErrorClass};

/// `whence` for `lseek`: the next offset at or after the given one that holds data
/// (`include/uapi/linux/fs.h`, Linux 3.1+).
pub const SEEK_DATA: i32 = libc::SEEK_DATA;
/// `whence` for `lseek`: the next hole at or after the given one; the end of the file counts as
/// a hole (`include/uapi/linux/fs.h`, Linux 3.1+).
pub const SEEK_HOLE: i32 = libc::SEEK_HOLE;

/// A half-open byte range `[start, start + len)` of the device or image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl ByteRange {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// Errors of the extent walk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtentError {
    /// The file's size could not be read.
    #[error("read the size of {}", path.display())]
    Size {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `lseek(SEEK_DATA)` failed with something other than `ENXIO`.
    #[error("seek data in {} from offset {offset}", path.display())]
    SeekData {
        /// The file searched.
        path: PathBuf,
        /// The offset the search started from.
        offset: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `lseek(SEEK_HOLE)` failed.
    #[error("seek hole in {} from offset {offset}", path.display())]
    SeekHole {
        /// The file searched.
        path: PathBuf,
        /// The offset the search started from.
        offset: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file system of the file does not implement `SEEK_DATA` (`EINVAL` at offset 0).
    #[error("seek data in {}: the file system does not support SEEK_DATA/SEEK_HOLE", path.display())]
    Unsupported {
        /// The file searched.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl ExtentError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ExtentError::Unsupported { .. } => ErrorClass::Unsupported,
            ExtentError::Size { source, .. }
            | ExtentError::SeekData { source, .. }
            | ExtentError::SeekHole { source, .. } => class_of_io(source),
        }
    }
}

/// An iterator over the data extents of a file, in increasing order, as byte ranges.
///
/// The file's size is read once when the iterator is made; extents are clipped to it. After
/// the first error the iterator ends.
#[derive(Debug)]
pub struct Extents<'a> {
    file: &'a File,
    path: &'a Path,
    pos: u64,
    end: u64,
    done: bool,
}

impl<'a> Extents<'a> {
    /// The data extents of the first `len` bytes of `file` (whose name `path` is used in
    /// errors). Extents beyond `len` (the file grew) are not reported.
    pub fn new(file: &'a File, path: &'a Path, len: u64) -> Extents<'a> {
        Extents {
            file,
            path,
            pos: 0,
            end: len,
            done: false,
        }
    }
}

impl Iterator for Extents<'_> {
    type Item = Result<Range<u64>, ExtentError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let file = self.file;
        let found = next_extent(
            |offset, whence| seek(file, offset, whence),
            self.path,
            self.pos,
            self.end,
        );
        match found {
            Ok(Some(r)) => {
                self.pos = r.end;
                Some(Ok(r))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// `lseek` with our `whence` constants, retrying `EINTR`.
pub fn seek(file: &File, offset: u64, whence: i32) -> io::Result<u64> {
    let whence = match whence {
        SEEK_DATA => Whence::SeekData,
        SEEK_HOLE => Whence::SeekHole,
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    let offset =
        i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    loop {
        match lseek(file, offset, whence) {
            Ok(r) => {
                return u64::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

/// Find the first data extent at or after `pos` in a file of `end` bytes, with `seek(offset,
/// whence)` standing for `lseek`. `None` when there is no more data.
///
/// Split from the iterator so the error handling can be tested with a fake `lseek`.
pub fn next_extent(
    mut seek: impl FnMut(u64, i32) -> io::Result<u64>,
    path: &Path,
    pos: u64,
    end: u64,
) -> Result<Option<Range<u64>>, ExtentError> {
    if pos >= end {
        return Ok(None);
    }
    let start = match seek(pos, SEEK_DATA) {
        Ok(start) => start,
        // ENXIO: no data at or after `pos` (lseek(2)); the rest of the file is a hole.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
        // EINVAL at offset 0 of a non-empty file: this file system has no SEEK_DATA.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) && pos == 0 => {
            return Err(ExtentError::Unsupported {
                path: path.to_path_buf(),
                source: e,
            })
        }
        Err(source) => {
            return Err(ExtentError::SeekData {
                path: path.to_path_buf(),
                offset: pos,
                source,
            })
        }
    };
    if start < pos {
        return Err(ExtentError::SeekData {
            path: path.to_path_buf(),
            offset: pos,
            source: io::Error::other(format!("lseek went backwards to {start}")),
        });
    }
    if start >= end {
        // The file grew since its size was read; what lies beyond is not ours to copy.
        return Ok(None);
    }
    // Data was found at `start`, so there is a hole (at worst the end of file) after it; ENXIO
    // here means the file shrank underneath us, which is an error like any other.
    let hole = seek(start, SEEK_HOLE).map_err(|source| ExtentError::SeekHole {
        path: path.to_path_buf(),
        offset: start,
        source,
    })?;
    if hole <= start {
        return Err(ExtentError::SeekHole {
            path: path.to_path_buf(),
            offset: start,
            source: io::Error::other(format!("lseek returned {hole}, not after the data")),
        });
    }
    Ok(Some(start..hole.min(end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An extent reaching past the size read at the start (the file grew) is clipped to it.
    #[test]
    fn next_extent_clips_to_file_size() {
        let path = Path::new("fake");
        let r = next_extent(
            |o, w| Ok(if w == SEEK_DATA { o + 10 } else { o + 1000 }),
            path,
            0,
            500,
        )
        .unwrap();
        assert_eq!(r, Some(10..500));
    }

    /// ENXIO from SEEK_DATA is the end of the data, not an error.
    #[test]
    fn enxio_means_no_more_data() {
        let r = next_extent(
            |_, _| Err(io::Error::from_raw_os_error(libc::ENXIO)),
            Path::new("f"),
            4096,
            8192,
        );
        assert_eq!(r.unwrap(), None);
    }

    /// EINVAL from SEEK_DATA at offset 0 of a non-empty file says the fs has no SEEK_DATA.
    #[test]
    fn einval_at_zero_is_unsupported() {
        let e = next_extent(
            |_, _| Err(io::Error::from_raw_os_error(libc::EINVAL)),
            Path::new("f"),
            0,
            8192,
        )
        .unwrap_err();
        assert!(matches!(e, ExtentError::Unsupported { .. }), "{e:?}");
        assert_eq!(e.class(), ErrorClass::Unsupported);
        assert!(e.to_string().contains("SEEK_DATA"));
    }

    /// Any other SEEK_DATA error is an error naming the step, the path and the offset.
    #[test]
    fn other_seek_data_errors_are_errors() {
        let e = next_extent(
            |_, _| Err(io::Error::from_raw_os_error(libc::EIO)),
            Path::new("/img"),
            4096,
            8192,
        )
        .unwrap_err();
        assert!(
            matches!(e, ExtentError::SeekData { offset: 4096, .. }),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "seek data in /img from offset 4096");
        assert!(std::error::Error::source(&e).is_some());
        // Only EINVAL *at offset 0* means "no SEEK_DATA here": EIO at 0 and EINVAL further on
        // are plain errors.
        for (errno, pos) in [(libc::EIO, 0), (libc::EINVAL, 4096)] {
            let e = next_extent(
                |_, _| Err(io::Error::from_raw_os_error(errno)),
                Path::new("/img"),
                pos,
                8192,
            )
            .unwrap_err();
            assert!(
                matches!(e, ExtentError::SeekData { offset, .. } if offset == pos),
                "errno {errno} at {pos}: {e:?}"
            );
        }
    }

    /// A SEEK_HOLE failure after data was found (e.g. ENXIO: the file shrank) is an error.
    #[test]
    fn seek_hole_errors_are_errors() {
        let e = next_extent(
            |o, w| {
                if w == SEEK_DATA {
                    Ok(o)
                } else {
                    Err(io::Error::from_raw_os_error(libc::ENXIO))
                }
            },
            Path::new("/img"),
            0,
            8192,
        )
        .unwrap_err();
        assert!(
            matches!(e, ExtentError::SeekHole { offset: 0, .. }),
            "{e:?}"
        );
    }
}
