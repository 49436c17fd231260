//! The format plan zeroes metadata and nothing else.
//!
//! The strict-device and VM tests catch a plan that zeroes too little; nothing caught one that
//! zeroes too much (cargo-mutants: computing the inode-table length as `inodes + size / 4096`
//! instead of `inodes * size / 4096` zeroed 8192 blocks per group instead of 512, a quarter of
//! the disk, and every test passed). Here every zero range of `format::build_image` must lie
//! inside the metadata that `dumpe2fs`/`debugfs` of the image name (superblocks, descriptors,
//! reserved GDT blocks, bitmaps, inode tables, journal), and conversely every such block must be
//! zeroed or be image data. Unprivileged; needs e2fsprogs (skip rule otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // only part of the layout helpers is used here
#[path = "support/ext4_layout.rs"]
mod ext4_layout;
#[path = "support/skip.rs"]
mod skip;

use std::ops::Range;
use std::process::Command;

use ext4_layout::Ext4Layout;
use scratchcrypt::format::{build_image, FormatOptions};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The region kinds that a plan may zero (and that must be written).
const METADATA: [&str; 8] = [
    "primary superblock",
    "backup superblock",
    "group descriptors",
    "reserved GDT blocks",
    "block bitmap",
    "inode bitmap",
    "inode table",
    "journal",
];

fn merged(mut v: Vec<Range<u64>>) -> Vec<Range<u64>> {
    v.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in v {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The parts of `r` not covered by the sorted, merged `cover`.
fn uncovered(r: &Range<u64>, cover: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut at = r.start;
    for c in cover {
        if c.end <= at || c.start >= r.end {
            continue;
        }
        if c.start > at {
            out.push(at..c.start);
        }
        at = at.max(c.end);
    }
    if at < r.end {
        out.push(at..r.end);
    }
    out
}

fn check(size: u64) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image");
    let plan = build_image(&image, size, &FormatOptions::default()).unwrap();
    let layout = Ext4Layout::read(&image).unwrap();
    let bs = layout.block_size;
    let metadata = merged(
        layout
            .regions()
            .into_iter()
            .filter(|(_, _, w)| METADATA.iter().any(|k| w.starts_with(k)))
            .map(|(f, l, _)| f * bs..(l + 1) * bs)
            .collect(),
    );
    let zero: Vec<Range<u64>> = plan.zero_ranges.iter().map(|r| r.start..r.end()).collect();
    let excess: Vec<Range<u64>> = zero.iter().flat_map(|r| uncovered(r, &metadata)).collect();
    assert!(
        excess.is_empty(),
        "{size} bytes: the plan zeroes {} bytes outside the metadata: {:?}",
        excess.iter().map(|r| r.end - r.start).sum::<u64>(),
        &excess[..excess.len().min(5)]
    );
    let image_file = std::fs::File::open(&image).unwrap();
    let data: Vec<Range<u64>> = scratchcrypt::format::data_extents(&image_file, &image)
        .unwrap()
        .iter()
        .map(|r| r.start..r.end())
        .collect();
    let written = merged(zero.iter().chain(&data).cloned().collect());
    let missing: Vec<Range<u64>> = metadata
        .iter()
        .flat_map(|r| uncovered(r, &written))
        .collect();
    assert!(
        missing.is_empty(),
        "{size} bytes: metadata neither zeroed nor image data: {:?}",
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        plan.zero_bytes,
        zero.iter().map(|r| r.end - r.start).sum::<u64>()
    );
}

/// At sizes with 4, 8, 32 and 512 block groups (flex groups 1 to 32, backups in groups 1, 3,
/// 5, 7, 9, 25, 27, 49, 81, 125, 243, 343).
#[test]
fn plan_zeroes_exactly_the_metadata_holes() {
    if Command::new("dumpe2fs").arg("-V").output().is_err()
        && skip::cannot_run(
            "plan_zeroes_exactly_the_metadata_holes",
            "needs dumpe2fs and debugfs (e2fsprogs)",
        )
    {
        return;
    }
    for size in [512 * MIB, GIB, 4 * GIB, 64 * GIB] {
        check(size);
    }
}

/// The helper finds what is outside a cover.
#[test]
#[allow(clippy::single_range_in_vec_init)] // a one-range cover is one of the cases
fn uncovered_finds_the_gaps() {
    assert_eq!(uncovered(&(0..10), &[2..4, 6..7]), vec![0..2, 4..6, 7..10]);
    assert_eq!(uncovered(&(3..5), &[0..10]), Vec::<Range<u64>>::new());
}
