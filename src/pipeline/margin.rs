//! Which ranges of the mapping get zeroed: the plan's ranges plus read-ahead margins.
//!
//! The formatter's plan covers every block that ext4 or e2fsck *asks* for. But user-space tools
//! read the block device through the page cache, and the kernel's read-ahead then reads up to
//! `read_ahead_kb` beyond what was asked. e2fsck reading the last directory block of group 0
//! makes the kernel read the free blocks after it; on the mapping those were never written, and
//! dm-integrity logs an `INTEGRITY AEAD ERROR` for each (seen under qemu: one error per fresh
//! 1 GiB disk, from e2fsck). Read-ahead only runs forward, so zeroing a margin of the device's
//! read-ahead size after every written run — the union of zero ranges and image data — keeps
//! those reads on written blocks. The margins fall into free space, which ext4 never reads, so
//! writing zeros there changes nothing in the file system.
//!
//! The last [`TAIL_BYTES`] of the mapping are zeroed too: probes such as blkid read the end of a
//! device (GPT backup header, md and ZFS labels) without being asked to by the file system.

use std::ops::Range;

/// The kernel's default read-ahead (`VM_READAHEAD_PAGES`, 128 KiB, `include/linux/mm.h`), used
/// when the device's own setting cannot be read.
pub const DEFAULT_READAHEAD: u64 = 128 << 10;

/// Bytes at the end of the mapping that are always zeroed.
pub const TAIL_BYTES: u64 = 1 << 20;

/// Sort and merge `ranges` (touching or overlapping ranges become one); empty ones are dropped.
pub fn merge(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The ranges to zero on a mapping of `size` bytes: `zero` (the plan), a `margin` after every
/// run of `zero` ∪ `data`, and the last [`TAIL_BYTES`]. Everything is rounded to `block`
/// (margins outward), clipped to the mapping, merged and sorted. Image data copied afterwards
/// overwrites whatever of it lies in a margin.
pub fn ranges_to_zero(
    zero: &[Range<u64>],
    data: &[Range<u64>],
    margin: u64,
    size: u64,
    block: u64,
) -> Vec<Range<u64>> {
    let block = block.max(1);
    let size = size / block * block;
    let up = |v: u64| v.div_ceil(block) * block;
    let written = merge(zero.iter().chain(data).cloned().collect());
    let mut all: Vec<Range<u64>> = zero.to_vec();
    for run in &written {
        let start = up(run.end).min(size);
        all.push(start..up(run.end.saturating_add(margin)).min(size));
    }
    all.push(size.saturating_sub(TAIL_BYTES)..size);
    merge(
        all.into_iter()
            .map(|r| r.start.min(size)..r.end.min(size))
            .collect(),
    )
}

/// Bytes covered by `ranges` (which must not overlap).
pub fn total(ranges: &[Range<u64>]) -> u64 {
    ranges.iter().map(|r| r.end - r.start).sum()
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-range slices are the point of these cases
mod tests {
    use super::*;

    const K: u64 = 1024;
    const M: u64 = 1024 * 1024;

    /// Every written run gets a margin after it, clipped at the device end, plus the tail.
    #[test]
    fn margins_follow_every_written_run() {
        let zero = [0..64 * K, 10 * M..11 * M];
        let data = [64 * K..68 * K, 5 * M..5 * M + 4 * K];
        let got = ranges_to_zero(&zero, &data, 128 * K, 32 * M, 4096);
        assert_eq!(
            got,
            vec![
                0..64 * K,
                68 * K..196 * K,
                5 * M + 4 * K..5 * M + 132 * K,
                10 * M..11 * M + 128 * K,
                31 * M..32 * M,
            ]
        );
    }

    /// Margins never reach past the end, and a run ending at the end adds nothing.
    #[test]
    fn margins_are_clipped_to_the_device() {
        let got = ranges_to_zero(&[0..4096], &[(8 * M - 4096)..8 * M], 128 * K, 8 * M, 4096);
        assert_eq!(got, vec![0..4096 + 128 * K, 7 * M..8 * M]);
        assert!(got.iter().all(|r| r.end <= 8 * M));
    }

    /// Unaligned inputs are rounded so every range stays block-aligned.
    #[test]
    fn results_are_block_aligned() {
        let got = ranges_to_zero(&[0..4096], &[4096..5000], 10_000, 64 * M + 100, 4096);
        for r in &got {
            assert_eq!(r.start % 4096, 0, "{r:?}");
            assert_eq!(r.end % 4096, 0, "{r:?}");
        }
        assert_eq!(got[..2], [0..4096, 8192..16384]);
    }

    /// Merging drops empties and joins touching and overlapping ranges.
    #[test]
    fn merge_joins_and_sorts() {
        assert_eq!(merge(vec![5..6, 0..2, 2..3, 1..2, 7..7]), vec![0..3, 5..6]);
        assert_eq!(total(&[0..3, 5..6]), 4);
    }
}
