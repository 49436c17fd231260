//! The zero list of a [`super::FormatPlan`] and the data map of a sparse image.

use std::fs::File;
use std::path::Path;

use crate::extent::{ByteRange, ExtentError, Extents};

/// Collects block runs in any order and yields them sorted, merged and non-overlapping.
#[derive(Debug, Default)]
pub struct RangeBuilder {
    runs: Vec<(u64, u64)>,
}

impl RangeBuilder {
    /// Add blocks `[first, first + count)`; empty runs are ignored. Consecutive calls with
    /// adjacent runs are merged on the spot, so long sequential inputs stay small.
    pub fn add_blocks(&mut self, first: u64, count: u64) {
        if count == 0 {
            return;
        }
        if let Some(last) = self.runs.last_mut() {
            if last.1 == first {
                last.1 = first + count;
                return;
            }
        }
        self.runs.push((first, first + count));
    }

    /// The ranges in bytes for blocks of `block_size` bytes: sorted, merged, non-overlapping.
    pub fn into_byte_ranges(mut self, block_size: u32) -> Vec<ByteRange> {
        self.runs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.runs.len());
        for (s, e) in self.runs {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let bs = u64::from(block_size);
        merged
            .into_iter()
            .map(|(s, e)| ByteRange {
                start: s * bs,
                len: (e - s) * bs,
            })
            .collect()
    }
}

/// The data extents of a sparse file, as reported by `lseek(SEEK_DATA/SEEK_HOLE)`.
///
/// This is the extent copier's own iterator ([`crate::extent::Extents`]), so the plan's byte
/// count is exactly what the pipeline's copy will write, not what libext2fs believes it wrote.
pub fn data_extents(file: &File, path: &Path) -> Result<Vec<ByteRange>, ExtentError> {
    let len = file.metadata().map_err(|source| ExtentError::Size {
        path: path.to_path_buf(),
        source,
    })?;
    Extents::new(file, path, len.len())
        .map(|extent| {
            extent.map(|r| ByteRange {
                start: r.start,
                len: r.end - r.start,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    /// Runs given out of order and overlapping come out sorted and merged, in bytes.
    #[test]
    fn builder_sorts_and_merges() {
        let mut b = RangeBuilder::default();
        b.add_blocks(10, 2);
        b.add_blocks(12, 3); // adjacent: merged on the spot
        b.add_blocks(0, 1);
        b.add_blocks(14, 4); // overlaps the first run
        b.add_blocks(30, 0); // empty: ignored
        b.add_blocks(20, 1);
        assert_eq!(
            b.into_byte_ranges(4096),
            vec![
                ByteRange {
                    start: 0,
                    len: 4096
                },
                ByteRange {
                    start: 10 * 4096,
                    len: 8 * 4096
                },
                ByteRange {
                    start: 20 * 4096,
                    len: 4096
                },
            ]
        );
    }

    /// SEEK_DATA sees the two written blocks of an otherwise sparse file.
    #[test]
    fn data_extents_of_sparse_file() {
        let mut f = tempfile::tempfile_in("/dev/shm")
            .or_else(|_| tempfile::tempfile())
            .unwrap();
        f.set_len(64 << 20).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[1u8; 4096]).unwrap();
        f.seek(SeekFrom::Start(32 << 20)).unwrap();
        f.write_all(&[0u8; 4096]).unwrap();
        let ext = data_extents(&f, Path::new("image")).unwrap();
        let total: u64 = ext.iter().map(|r| r.len).sum();
        assert_eq!(ext.len(), 2, "{ext:?}");
        assert!(ext[0].start <= 1 << 20 && ext[0].end() >= (1 << 20) + 4096);
        assert!(ext[1].start <= 32 << 20 && ext[1].end() >= (32 << 20) + 4096);
        assert!(total < 8 << 20);
    }
}
