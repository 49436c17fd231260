//! Device writes for the strict-device tests, through scratchcrypt's own extent copier and
//! range zeroing (`scratchcrypt::sparse`), so the tests exercise the product's code paths.
//! `copy_data_extents` alone is the Go original's recipe: data extents copied, holes skipped.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

fn to_io(e: scratchcrypt::sparse::SparseError) -> io::Error {
    io::Error::other(e)
}

/// Copy every data extent of `image` to the same offset of `device` (holes skipped), then
/// fsync the device. Returns (extents, bytes) copied.
pub fn copy_data_extents(image: &Path, device: &Path) -> io::Result<(u64, u64)> {
    let src = File::open(image)?;
    let dst = OpenOptions::new().write(true).open(device)?;
    let stats = scratchcrypt::sparse::copy_extents(
        &src,
        image,
        &dst,
        device,
        &mut scratchcrypt::sparse::no_progress,
    )
    .map_err(to_io)?;
    Ok((stats.extents, stats.bytes_copied))
}

/// Write zeros over `len` bytes of `device` from `offset` (really written, never discarded).
pub fn write_zeros(device: &Path, offset: u64, len: u64) -> io::Result<()> {
    let dst = OpenOptions::new().read(true).write(true).open(device)?;
    let ranges = [std::ops::Range {
        start: offset,
        end: offset + len,
    }];
    scratchcrypt::sparse::zero_ranges(
        &dst,
        device,
        ranges.as_slice(),
        &mut scratchcrypt::sparse::no_progress,
    )
    .map_err(to_io)?;
    Ok(())
}

/// What `encrypt` writes, done by hand: zero `plan`'s ranges on `device`, then copy `image`'s
/// data extents over them (both through scratchcrypt's own code; each ends with an fsync).
#[allow(dead_code)] // not every test binary that includes the support module uses it
pub fn zero_then_copy(
    plan: &scratchcrypt::FormatPlan,
    image: &Path,
    device: &Path,
) -> io::Result<()> {
    let dst = OpenOptions::new().read(true).write(true).open(device)?;
    let ranges: Vec<_> = plan.zero_ranges.iter().map(|r| r.start..r.end()).collect();
    scratchcrypt::sparse::zero_ranges(
        &dst,
        device,
        &ranges,
        &mut scratchcrypt::sparse::no_progress,
    )
    .map_err(to_io)?;
    drop(dst);
    copy_data_extents(image, device).map(|_| ())
}
