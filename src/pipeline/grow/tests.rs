//! Unit tests of the grower's pieces that need no mount: the superblock it reads back from a
//! real fast-start image, and its run record.

use std::os::unix::fs::FileExt;

use super::*;
use crate::resize::{SUPERBLOCK_BYTES, SUPERBLOCK_OFFSET};

/// A superblock as mkfs writes it for us parses; every field we depend on is checked.
#[test]
fn superblock_values_we_never_write_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("img");
    let opts = crate::format::FormatOptions {
        initial_bytes: Some(512 << 20),
        ..crate::format::FormatOptions::default()
    };
    let plan = crate::format::build_image(&image, 4 << 30, &opts).unwrap();
    let mut sb = [0u8; SUPERBLOCK_BYTES];
    std::fs::File::open(&image)
        .unwrap()
        .read_exact_at(&mut sb, SUPERBLOCK_OFFSET)
        .unwrap();
    let g = Ext4Geometry::parse(&sb, &image).unwrap();
    assert_eq!(g.blocks, plan.block_count);
    assert_eq!(g.inodes_per_group, 8192);
    assert!(g.has_noinit_itable());
    assert_eq!(g.groups_per_flex, 16);
    type Mutation = fn(&mut [u8; SUPERBLOCK_BYTES]);
    let cases: [(Mutation, &str); 7] = [
        (|b| b[0x38] = 0, "magic"),
        (|b| b[0x18] = 0, "block size"),
        (|b| b[0x60] |= 0x10, "incompatible"),
        (
            |b| b[0x20..0x24].copy_from_slice(&1u32.to_le_bytes()),
            "blocks per group",
        ),
        (|b| b[0xFE] = 32, "descriptor size"),
        (
            |b| b[0x58..0x5A].copy_from_slice(&100u16.to_le_bytes()),
            "inode size",
        ),
        (|b| b[0x150] = 2, "block count"),
    ];
    for (mutate, what) in cases {
        let mut bad = sb;
        mutate(&mut bad);
        let e = Ext4Geometry::parse(&bad, &image).unwrap_err();
        assert!(e.to_string().contains(what), "{e} should name {what}");
    }
}

/// The growth record survives a save and load, and a missing one is `None`, not an error.
#[test]
fn growth_record_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    // The state directory must be private (mode 0700), as /run/scratchcrypt is made.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let name = MappingName::new("scratch").unwrap();
    assert_eq!(GrowState::load_in(dir.path(), &name).unwrap(), None);
    let state = GrowState {
        target_blocks: 1 << 20,
        mount: PathBuf::from("/mnt/scratch"),
        grower_pid: Some(42),
    };
    state.save_in(dir.path(), &name).unwrap();
    assert_eq!(
        GrowState::load_in(dir.path(), &name).unwrap(),
        Some(state.clone())
    );
    // Two processes saving at once (the encrypt process and its grower) both succeed.
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (dir, name, state) = (dir.path().to_path_buf(), name.clone(), state.clone());
            std::thread::spawn(move || {
                for _ in 0..200 {
                    state.save_in(&dir, &name).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    std::fs::write(dir.path().join("scratch.json"), b"{not json").unwrap();
    let e = GrowState::load_in(dir.path(), &name).unwrap_err();
    assert!(e.line().contains("parse"), "{}", e.line());
}
