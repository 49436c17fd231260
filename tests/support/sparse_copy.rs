//! The Go original's copy, kept tiny: write only the data extents of an image (found with
//! `lseek(SEEK_DATA/SEEK_HOLE)`) onto a device, skipping the holes. The integrator replaces it
//! with `scratchcrypt::sparse::copy_extents` once that lands; it stays here because the negative
//! control needs exactly the original's behaviour, holes skipped.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::unistd::{lseek, Whence};

/// Copy granularity, and the alignment extents are widened to (a 4096-byte device block).
const ALIGN: u64 = 4096;

/// Copy every data extent of `image` to the same offset of `device`, then fsync the device.
/// Returns (extents, bytes) copied.
pub fn copy_data_extents(image: &Path, device: &Path) -> io::Result<(u64, u64)> {
    let src = File::open(image)?;
    let dst = OpenOptions::new().write(true).open(device)?;
    let size = src.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    let (mut extents, mut bytes) = (0u64, 0u64);
    let mut pos = 0u64;
    while pos < size {
        let start = match lseek(src.as_fd(), pos as i64, Whence::SeekData) {
            Ok(s) => s as u64,
            Err(nix::errno::Errno::ENXIO) => break, // no data after pos
            Err(e) => return Err(e.into()),
        };
        let end = lseek(src.as_fd(), start as i64, Whence::SeekHole)? as u64;
        // Widen to whole device blocks so the device never sees a partial-block write.
        let (start, end) = (start / ALIGN * ALIGN, end.div_ceil(ALIGN) * ALIGN);
        let end = end.min(size);
        let mut at = start;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            src.read_exact_at(&mut buf[..n], at)?;
            dst.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        extents += 1;
        bytes += end - start;
        pos = end;
    }
    dst.sync_all()?;
    Ok((extents, bytes))
}

/// Write zeros over `[offset, offset + len)` of `device` and fsync it (both ends must be
/// multiples of 4096). This is what `scratchcrypt::sparse::zero_ranges` does for the inode
/// tables and the journal; the positive control uses it on the whole device.
pub fn write_zeros(device: &Path, offset: u64, len: u64) -> io::Result<()> {
    if !offset.is_multiple_of(ALIGN) || !len.is_multiple_of(ALIGN) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("zero range {offset}+{len} is not 4096-aligned"),
        ));
    }
    let dst = OpenOptions::new().write(true).open(device)?;
    let zeros = vec![0u8; 1 << 20];
    let mut at = offset;
    while at < offset + len {
        let n = ((offset + len - at) as usize).min(zeros.len());
        dst.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    dst.sync_all()
}
