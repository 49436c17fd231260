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
//! The blocks libblkid's probers read are written too ([`crate::probes`]): `blkid -p`, udev,
//! `mount` without `-t` read the end of a device (RAID metadata, md and ZFS labels) without being
//! asked to by the file system, and give up on the first unreadable block (issue 24). This used
//! to be a blanket last MiB, which missed Promise's read 3087 sectors before the end; now it is
//! exactly the probed blocks, less those the image writes anyway, with a margin after each run
//! like every other written run. On a fast start they lie beyond the initial file system, in
//! what becomes free space of the grown one: the grower zeroes and the kernel writes only the new
//! groups' metadata there, zeros already in free blocks change nothing.

use std::ops::Range;

/// The kernel's default read-ahead (`VM_READAHEAD_PAGES`, 128 KiB, `include/linux/mm.h`), used
/// when the device's own setting cannot be read.
pub const DEFAULT_READAHEAD: u64 = 128 << 10;

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

/// The blocks libblkid's probes read on a mapping of `size` bytes that neither `zero` nor the
/// whole blocks of `data` write: what the probes add to the plan. Rounded to `block`, merged.
pub fn probe_only(
    zero: &[Range<u64>],
    data: &[Range<u64>],
    size: u64,
    block: u64,
) -> Vec<Range<u64>> {
    let block = block.max(1);
    // Only whole blocks of data count as written: a partial one is zeroed first like the rest.
    let covered = merge(
        zero.iter()
            .cloned()
            .chain(
                data.iter()
                    .map(|r| r.start.div_ceil(block) * block..r.end / block * block),
            )
            .collect(),
    );
    subtract(crate::probes::probe_blocks(size, block), &covered)
}

/// `ranges` (sorted, merged) minus `holes` (sorted, merged).
fn subtract(ranges: Vec<Range<u64>>, holes: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let mut start = r.start;
        for h in holes {
            if h.end <= start || h.start >= r.end {
                continue;
            }
            if h.start > start {
                out.push(start..h.start);
            }
            start = start.max(h.end);
        }
        if start < r.end {
            out.push(start..r.end);
        }
    }
    out
}

/// The ranges to zero on a mapping of `size` bytes: `zero` (the plan), the blocks libblkid's
/// probes read that nothing else writes ([`probe_only`]), and a `margin` after every run of
/// `zero` ∪ `data` ∪ probe blocks. Everything is rounded to `block` (margins outward), clipped
/// to the mapping, merged and sorted. Image data copied afterwards overwrites whatever of it
/// lies in a margin.
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
    let probes = probe_only(zero, data, size, block);
    let written = merge(zero.iter().chain(data).chain(&probes).cloned().collect());
    let mut all: Vec<Range<u64>> = zero.iter().chain(&probes).cloned().collect();
    for run in &written {
        let start = up(run.end).min(size);
        all.push(start..up(run.end.saturating_add(margin)).min(size));
    }
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
    const G: u64 = 1024 * M;

    /// The probe blocks of a 32 MiB device, with their margins: the start ones (0..512 KiB of
    /// ZFS L0/L1 and the XFS log, LUKS2 secondaries and VMFS/UDF at 1, 2, 4 MiB) and the end ones
    /// (the Promise block 3087 sectors before the end, the last 512 KiB).
    fn probe_list_32m() -> Vec<Range<u64>> {
        vec![
            0..644 * K,
            M..M + 132 * K,
            2 * M..2 * M + 132 * K,
            4 * M..4 * M + 132 * K,
            32 * M - 1_581_056..32 * M - 1_576_960 + 128 * K,
            31 * M + 512 * K..32 * M,
        ]
    }

    /// Every written run gets a margin after it, clipped at the device end, and the probe
    /// blocks join the list with margins of their own.
    #[test]
    fn margins_follow_every_written_run() {
        let zero = [0..64 * K, 10 * M..11 * M];
        let data = [64 * K..68 * K, 5 * M..5 * M + 4 * K];
        let got = ranges_to_zero(&zero, &data, 128 * K, 32 * M, 4096);
        let mut want = probe_list_32m();
        // The whole data block at 64 KiB is copied, not zeroed.
        want[0] = 0..64 * K;
        want.push(68 * K..644 * K);
        want.extend([5 * M + 4 * K..5 * M + 132 * K, 10 * M..11 * M + 128 * K]);
        assert_eq!(got, merge(want));
    }

    /// Margins never reach past the end, and a run ending at the end adds nothing.
    #[test]
    fn margins_are_clipped_to_the_device() {
        let got = ranges_to_zero(&[0..4096], &[(8 * M - 4096)..8 * M], 128 * K, 8 * M, 4096);
        assert_eq!(
            got,
            vec![
                // ZFS L0/L1 to 512 KiB, the LUKS2 secondary at 512 KiB, the margin.
                0..644 * K,
                M..M + 132 * K,
                2 * M..2 * M + 132 * K,
                4 * M..4 * M + 132 * K,
                8 * M - 1_581_056..8 * M - 1_576_960 + 128 * K,
                // The last data block is copied, not zeroed.
                8 * M - 512 * K..8 * M - 4096,
            ]
        );
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
        // The partial data block at 4096 is not a whole written block: the probes' 0..512 KiB
        // is zeroed under it, the LUKS2 secondary to 516 KiB, then a 10,000-byte margin.
        assert_eq!(got[0], 0..528 * K);
    }

    /// Merging drops empties and joins touching and overlapping ranges.
    #[test]
    fn merge_joins_and_sorts() {
        assert_eq!(merge(vec![5..6, 0..2, 2..3, 1..2, 7..7]), vec![0..3, 5..6]);
        assert_eq!(total(&[0..3, 5..6]), 4);
    }

    /// Subtraction splits, trims and drops.
    #[test]
    fn subtract_splits_and_trims() {
        assert_eq!(
            subtract(vec![0..10, 20..30], &[2..4, 8..22, 28..40]),
            vec![0..2, 4..8, 22..28]
        );
        assert_eq!(subtract(vec![0..10], &[]), vec![0..10]);
        assert!(subtract(vec![5..6], &[0..10]).is_empty());
    }

    /// Probe blocks already in the plan or copied as whole data blocks cost nothing.
    #[test]
    fn probe_blocks_written_anyway_are_not_zeroed_twice() {
        let size = 4 * G;
        let all = crate::probes::probe_blocks(size, 4096);
        assert!(probe_only(&all, &[], size, 4096).is_empty());
        assert!(probe_only(&[], &all, size, 4096).is_empty());
        assert_eq!(probe_only(&[], &[], size, 4096), all);
    }

    /// Bytes of probe blocks and of the whole list on a 4 GiB mapping: before (a blanket last
    /// MiB, no probe list) and after. Printed for the report; the end costs less than the MiB.
    #[test]
    fn four_gib_probe_bytes() {
        let size = 4 * G;
        // A plan that writes the first 8 MiB (as group 0's metadata does).
        let zero = [0..8 * M];
        let probes = probe_only(&zero, &[], size, 4096);
        assert_eq!(
            probes,
            vec![size - 1_581_056..size - 1_576_960, size - 512 * K..size]
        );
        let after = total(&ranges_to_zero(&zero, &[], 128 * K, size, 4096));
        let old_tail = total(&merge(vec![0..8 * M + 128 * K, size - M..size]));
        eprintln!(
            "4 GiB: probe blocks {} KiB, with margins {} KiB; old tail {} KiB",
            total(&probes) / K,
            (after - (8 * M + 128 * K)) / K,
            (old_tail - (8 * M + 128 * K)) / K
        );
        assert_eq!(total(&probes), 516 * K);
        assert_eq!(after - (8 * M + 128 * K), 644 * K);
        assert!(after < old_tail);
    }

    /// Real layouts: every start-relative probe block of the full format at 4 GiB and of the
    /// fast start (512 MiB initial file system on a 4 GiB mapping) is written by the plan or the
    /// image already; only the end-relative blocks are added, and those lie beyond the initial
    /// file system.
    #[test]
    fn start_probes_are_covered_by_group_0_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let size = 4 * G;
        for (label, initial) in [("full", None), ("fast start", Some(512 * M))] {
            let image = dir.path().join(label.replace(' ', "-"));
            let options = crate::format::FormatOptions {
                initial_bytes: initial,
                ..crate::format::FormatOptions::default()
            };
            let plan = crate::format::build_image(&image, size, &options).unwrap();
            let zero: Vec<Range<u64>> = plan.zero_ranges.iter().map(|r| r.start..r.end()).collect();
            let file = std::fs::File::open(&image).unwrap();
            let data: Vec<Range<u64>> = crate::sparse::data_extents(&file, &image)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let probes = probe_only(&zero, &data, size, 4096);
            let fs_end = plan.block_count * 4096;
            for r in &probes {
                assert!(
                    r.start >= size - 2 * M && (initial.is_none() || r.start >= fs_end),
                    "{label}: probe blocks {r:?} not written by the image (fs ends at {fs_end})"
                );
            }
            assert_eq!(total(&probes), 516 * K, "{label}: {probes:?}");
        }
    }
}
