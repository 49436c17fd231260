//! The data extents of a file, from `lseek(SEEK_DATA)` / `lseek(SEEK_HOLE)`.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::Path;

use nix::unistd::{lseek, Whence};

use super::{SparseError, SEEK_DATA, SEEK_HOLE};

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

/// The data extents of `file` (whose name `path` is used in errors).
///
/// `file` may be a regular file or a block device (a block device is one extent: the kernel
/// reports it all as data).
pub fn data_extents<'a>(file: &'a File, path: &'a Path) -> Result<Extents<'a>, SparseError> {
    let end = super::copy::size_of(file, path)?;
    Ok(Extents {
        file,
        path,
        pos: 0,
        end,
        done: false,
    })
}

impl Iterator for Extents<'_> {
    type Item = Result<Range<u64>, SparseError>;

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
pub(super) fn seek(file: &File, offset: u64, whence: i32) -> io::Result<u64> {
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
pub(super) fn next_extent(
    mut seek: impl FnMut(u64, i32) -> io::Result<u64>,
    path: &Path,
    pos: u64,
    end: u64,
) -> Result<Option<Range<u64>>, SparseError> {
    if pos >= end {
        return Ok(None);
    }
    let start = match seek(pos, SEEK_DATA) {
        Ok(start) => start,
        // ENXIO: no data at or after `pos` (lseek(2)); the rest of the file is a hole.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
        // EINVAL at offset 0 of a non-empty file: this file system has no SEEK_DATA.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) && pos == 0 => {
            return Err(SparseError::SeekUnsupported {
                path: path.to_path_buf(),
                source: e,
            })
        }
        Err(source) => {
            return Err(SparseError::SeekData {
                path: path.to_path_buf(),
                offset: pos,
                source,
            })
        }
    };
    if start < pos {
        return Err(SparseError::SeekData {
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
    let hole = seek(start, SEEK_HOLE).map_err(|source| SparseError::SeekHole {
        path: path.to_path_buf(),
        offset: start,
        source,
    })?;
    if hole <= start {
        return Err(SparseError::SeekHole {
            path: path.to_path_buf(),
            offset: start,
            source: io::Error::other(format!("lseek returned {hole}, not after the data")),
        });
    }
    Ok(Some(start..hole.min(end)))
}
