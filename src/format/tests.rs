//! Unit tests of the image builder. Unprivileged: they build sparse files in a temp dir and
//! read the superblock back by hand (offsets from `struct ext2_super_block`, ext2_fs.h).
use super::*;

const MIB: u64 = 1 << 20;

/// Superblock bytes of an image (the primary superblock sits at byte 1024).
fn superblock(path: &Path) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut sb = vec![0u8; 1024];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut sb, 1024)
        .unwrap();
    sb
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// A size below the minimum is refused as invalid input, naming the file.
#[test]
fn too_small_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let err = build_image(&img, 4 * MIB, &FormatOptions::default()).unwrap_err();
    assert_eq!(err.class(), ErrorClass::InvalidInput);
    assert!(
        err.to_string().contains(&img.display().to_string()),
        "{err}"
    );
    assert!(matches!(
        err,
        FormatError::InvalidRequest {
            reason: RequestError::TooSmall,
            ..
        }
    ));
}

/// A label over 16 bytes and a bad inode ratio are refused before any file is created.
#[test]
fn bad_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let long = FormatOptions {
        label: Some("x".repeat(17)),
        ..FormatOptions::default()
    };
    assert!(matches!(
        build_image(&img, 64 * MIB, &long),
        Err(FormatError::InvalidRequest {
            reason: RequestError::LabelTooLong,
            ..
        })
    ));
    let ratio = FormatOptions {
        inode_ratio: Some(100),
        ..FormatOptions::default()
    };
    assert!(build_image(&img, 64 * MIB, &ratio).is_err());
    assert!(!img.exists());
}

/// Label, UUID, inode ratio and reserved percentage land in the superblock.
#[test]
fn options_reach_the_superblock() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let uuid = *b"0123456789abcdef";
    let opts = FormatOptions {
        inode_ratio: Some(65536),
        journal: true,
        reserved_percent: 1.0,
        label: Some("scratch".into()),
        uuid: Some(uuid),
        ..FormatOptions::default()
    };
    let plan = build_image(&img, 256 * MIB + 4095, &opts).unwrap();
    assert_eq!(
        plan.size_bytes,
        256 * MIB,
        "size rounds down to whole blocks"
    );
    let sb = superblock(&img);
    assert_eq!(&sb[0x38..0x3a], &[0x53, 0xef], "ext2 magic");
    assert_eq!(&sb[0x68..0x78], &uuid);
    assert_eq!(&sb[0x78..0x7f], b"scratch");
    assert_eq!(le32(&sb, 0x00), 4096, "256 MiB / 65536 inodes");
    assert_eq!(u64::from(le32(&sb, 0x00)), plan.inode_count);
    assert_eq!(le32(&sb, 0x08), 65536 / 100, "1% of the blocks reserved");
    assert_eq!(plan.uuid, "30313233-3435-3637-3839-616263646566");
}

/// Without a journal: no has_journal feature, no journal bytes, and only table ranges to zero.
#[test]
fn no_journal() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let opts = FormatOptions {
        journal: false,
        ..FormatOptions::default()
    };
    let plan = build_image(&img, 512 * MIB, &opts).unwrap();
    let with = build_image(&dir.path().join("j"), 512 * MIB, &FormatOptions::default()).unwrap();
    let sb = superblock(&img);
    assert_eq!(le32(&sb, 0x5c) & ffi::EXT3_FEATURE_COMPAT_HAS_JOURNAL, 0);
    assert_eq!(plan.journal_bytes, 0);
    assert_eq!(
        with.journal_bytes,
        (16 * MIB).min(JOURNAL_MAX_BYTES),
        "mke2fs' journal for 512 MiB, at most the measured default"
    );
    assert_eq!(with.zero_bytes - plan.zero_bytes, with.journal_bytes);
}

/// Zero ranges are block-aligned, sorted, disjoint, non-adjacent and inside the filesystem;
/// they include the whole journal and every inode table.
#[test]
fn zero_ranges_are_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let plan = build_image(&img, 2048 * MIB, &FormatOptions::default()).unwrap();
    let mut prev_end = None;
    for r in &plan.zero_ranges {
        assert!(
            r.len > 0 && r.start % 4096 == 0 && r.len % 4096 == 0,
            "{r:?}"
        );
        if let Some(e) = prev_end {
            assert!(
                r.start > e,
                "ranges must be sorted and merged: {:?}",
                plan.zero_ranges
            );
        }
        prev_end = Some(r.end());
    }
    assert!(prev_end.unwrap() <= plan.size_bytes);
    assert_eq!(
        plan.zero_bytes,
        plan.zero_ranges.iter().map(|r| r.len).sum::<u64>()
    );
    // 16 groups × 8192 inodes × 256 bytes of inode tables + the journal, at least.
    assert!(
        plan.zero_bytes >= 16 * 8192 * 256 + JOURNAL_MAX_BYTES,
        "{}",
        plan.zero_bytes
    );
    // mke2fs would make 64 MiB; the measured default is smaller.
    assert_eq!(plan.journal_bytes, JOURNAL_MAX_BYTES.min(64 * MIB));
}

/// Every zeroed byte has an owner, and the owners add up to the plan's zero bytes, for the
/// full format and for the fast start's initial filesystem.
#[test]
fn zero_owners_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    for opts in [
        FormatOptions::default(),
        FormatOptions {
            initial_bytes: Some(512 * MIB),
            ..FormatOptions::default()
        },
    ] {
        let plan = build_image(&img, 4096 * MIB, &opts).unwrap();
        let o = plan.zero_owners;
        assert_eq!(o.total(), plan.zero_bytes, "{o:?}");
        assert_eq!(o.journal, plan.journal_bytes, "{o:?}");
        let groups = u64::from(plan.group_count);
        assert_eq!(o.bitmaps, groups * 2 * 4096, "{o:?}");
        assert_eq!(o.inode_tables, plan.inode_count * 256, "{o:?}");
        assert!(o.superblocks_and_descriptors >= 2 * 4096, "{o:?}");
    }
}

/// The JSON form carries the ranges and counters the CLI prints.
#[test]
fn plan_serializes_to_json() {
    let dir = tempfile::tempdir().unwrap();
    let plan = build_image(&dir.path().join("img"), 64 * MIB, &FormatOptions::default()).unwrap();
    let v: serde_json::Value = serde_json::to_value(&plan).unwrap();
    assert_eq!(v["block_size"], 4096);
    assert_eq!(v["size_bytes"], 64 * MIB);
    assert!(v["elapsed_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        v["zero_ranges"].as_array().unwrap().len(),
        plan.zero_ranges.len()
    );
    assert!(v["zero_ranges"][0]["start"].is_u64() && v["zero_ranges"][0]["len"].is_u64());
    assert!(v["image_data_bytes"].as_u64().unwrap() > 0);
}

/// A file that cannot be created is an error naming the file, classed from the errno.
#[test]
fn uncreatable_file_is_reported() {
    let err = build_image(
        Path::new("/nonexistent-dir/img"),
        64 * MIB,
        &FormatOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, FormatError::CreateImage { .. }));
    assert_eq!(err.class(), ErrorClass::InvalidInput);
    assert!(err.to_string().contains("/nonexistent-dir/img"));
}

/// The fast start's descriptor reserve is what the growth to the device's size takes: one
/// block when no descriptor block is added (a zero would ask libext2fs for mke2fs' default),
/// one per added descriptor block (64 groups each), and a refusal past the resize inode's
/// 1024 pointers.
#[test]
fn growth_reserve_is_what_the_growth_takes() {
    assert_eq!(growth::reserve_for_growth(32, 4), Ok(1), "4 GiB");
    assert_eq!(growth::reserve_for_growth(64, 4), Ok(1));
    assert_eq!(growth::reserve_for_growth(65, 4), Ok(1), "a second block");
    assert_eq!(growth::reserve_for_growth(129, 4), Ok(2));
    assert_eq!(
        growth::reserve_for_growth(254, 4),
        Ok(3),
        "32 GiB's mapping"
    );
    assert_eq!(growth::reserve_for_growth(64 * 1025, 4), Ok(1024));
    assert_eq!(
        growth::reserve_for_growth(64 * 1025 + 1, 4),
        Err(RequestError::GrowthTooLarge)
    );
}
