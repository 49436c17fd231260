use super::*;

const GROUP: u64 = 32768;

/// A 4-group filesystem as a fast start leaves it: 8192 inodes of 256 bytes per group.
fn geometry(groups: u64) -> Ext4Geometry {
    Ext4Geometry {
        blocks: groups * GROUP,
        first_data_block: 0,
        blocks_per_group: GROUP,
        inodes_per_group: 8192,
        inode_size: 256,
        reserved_gdt_blocks: 511,
        groups_per_flex: 16,
        mount_opts: [0; 64],
        resize_inode: true,
    }
}

/// The backup groups of sparse_super: 0, 1 and the powers of 3, 5 and 7.
#[test]
fn backups_are_in_the_sparse_super_groups() {
    let with: Vec<u64> = (0..130).filter(|&g| has_backup(g)).collect();
    assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125]);
}

/// From 4 groups to 4 GiB: groups 4..16 (up to the flex boundary), then 16..32, each step
/// zeroing the chunk's bitmaps at its first group, a margin after the kernel's inode tables,
/// and the new last block.
#[test]
fn steps_follow_the_kernels_chunks() {
    let target = 32 * GROUP;
    let mut g = geometry(4);
    let step = next_step(&g, target, 0).unwrap();
    assert_eq!(step.blocks, 16 * GROUP);
    let at = |block: u64, n: u64| ByteRange {
        start: block * 4096,
        len: n * 4096,
    };
    let tables = 12 * 512;
    assert_eq!(
        step.zero,
        vec![
            at(4 * GROUP, 24),
            at(4 * GROUP + 24 + tables, 32),
            at(16 * GROUP - 1, 1)
        ]
    );
    g.blocks = step.blocks;
    let step = next_step(&g, target, 256 << 10).unwrap();
    assert_eq!(step.blocks, target);
    assert_eq!(step.zero[0], at(16 * GROUP, 32));
    assert_eq!(step.zero[1], at(16 * GROUP + 32 + 16 * 512, 64));
    g.blocks = step.blocks;
    assert_eq!(next_step(&g, target, 0), None);
}

/// A chunk that starts in a backup group zeroes past its superblock, GDT and reserve; a
/// partial last group ends the growth exactly at the target.
#[test]
fn backup_groups_and_partial_last_groups() {
    let mut g = geometry(3);
    g.groups_per_flex = 1;
    g.reserved_gdt_blocks = 10;
    let step = next_step(&g, 3 * GROUP + 5000, 0).unwrap();
    assert_eq!(step.blocks, 3 * GROUP + 5000);
    // Group 3 has a backup: 1 superblock + 1 GDT block + 10 reserved, then 2 bitmaps.
    assert_eq!(step.zero[0].start, 3 * GROUP * 4096);
    assert_eq!(step.zero[0].len, (1 + 1 + 10 + 2) * 4096);
    assert_eq!(step.zero.last().unwrap().start, (3 * GROUP + 4999) * 4096);
    g.blocks = 3 * GROUP + 5000;
    let step = next_step(&g, 3 * GROUP + 6000, 0).unwrap();
    assert_eq!(
        step.blocks,
        3 * GROUP + 6000,
        "the partial group is extended"
    );
    assert_eq!(
        step.zero,
        vec![ByteRange {
            start: (3 * GROUP + 5999) * 4096,
            len: 4096
        }]
    );
}

/// Every range of every step lies beyond the filesystem as it is, inside it as it will be.
#[test]
fn zeroing_never_touches_the_live_filesystem() {
    for (groups, target) in [(4, 1000 * GROUP + 77), (1, 20 * GROUP), (4, 40 * GROUP)] {
        let mut g = geometry(groups);
        while let Some(step) = next_step(&g, target, 128 << 10) {
            for r in &step.zero {
                assert!(
                    r.start >= g.blocks * 4096,
                    "{r:?} inside {} blocks",
                    g.blocks
                );
                assert!(
                    r.end() <= step.blocks * 4096,
                    "{r:?} beyond {}",
                    step.blocks
                );
                assert_eq!(r.start % 4096 + r.len % 4096, 0);
            }
            assert!(step.zero.windows(2).all(|w| w[0].end() <= w[1].start));
            assert!(step.blocks > g.blocks);
            g.blocks = step.blocks;
        }
        assert_eq!(g.blocks, target);
    }
}
