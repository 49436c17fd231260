//! Fast start: the first block groups of a filesystem laid out to grow online to the full size.
//!
//! # Why
//! Everything a full format writes grows with the disk: the inode tables are 1/64 of it and
//! the journal up to 1 GiB, and all of it must be written through the unwiped integrity
//! device before the first mount. A small filesystem is ready in constant time; the kernel
//! then grows it online (`EXT4_IOC_RESIZE_FS`) and, with `noinit_itable`, zeroes each new
//! group's inode table itself, through the mapping, before the group becomes visible.
//!
//! # What makes the grown filesystem the one mke2fs would have made
//! The full size is laid out first, in memory only (`ext2fs_initialize` on the image file,
//! freed without writing), and three of its values are carried over:
//! - **inodes per group**: the initial filesystem gets `inodes_per_group × groups` inodes, which
//!   `ext2fs_initialize` turns back into exactly that many per group; online growth keeps it;
//! - **reserved GDT blocks**: the full filesystem's reserve plus the descriptor blocks the
//!   growth will take from it (`fs/ext4/resize.c` moves reserved blocks into the GDT as groups
//!   are added), so the grown filesystem ends with mke2fs' reserve (less what exceeds the
//!   1024 blocks a resize inode can point to, from about 64 GiB up). When the reserve runs out
//!   the kernel converts to `meta_bg`, whose new GDT blocks it reads before writing them: on an
//!   unwiped device that read fails, so such a size is refused instead (about 8 TiB, the 1024
//!   block pointers of the resize inode's indirect block);
//! - **features and block counts**: the same superblock template, and the full block count
//!   (a too-small last group dropped as mke2fs drops it) becomes the growth target.
//!
//! The journal is sized for the initial filesystem by default, so the time to the first mount
//! stays constant; [`super::FormatOptions::full_journal`] sizes it for the full one instead.

use std::path::Path;

use super::ffi;
use super::fs::{Ext2Error, Ext2Fs};
use super::geometry::{Geometry, RequestError, BLOCK_SIZE};
use super::FormatOptions;

/// Group descriptors per GDT block: 4096-byte blocks, 64-byte descriptors (64bit feature).
const DESC_PER_BLOCK: u64 = BLOCK_SIZE as u64 / ffi::EXT2_MIN_DESC_SIZE_64BIT as u64;

/// Block pointers in the resize inode's double-indirect block: the most reserved GDT blocks a
/// filesystem can have (`EXT2_ADDR_PER_BLOCK`, and mke2fs' cap in `calc_reserved_gdt_blocks`).
const MAX_RESERVED_GDT: u64 = BLOCK_SIZE as u64 / 4;

/// The `noinit_itable` mount option, stored in `s_mount_opts`: ext4 parses that field at every
/// mount (`parse_apply_sb_mount_options`, fs/ext4/super.c), so growth zeroes inode tables
/// synchronously whoever mounts the disk.
pub const GROWTH_MOUNT_OPTS: &[u8] = b"noinit_itable";

/// What the full-size filesystem would look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalLayout {
    /// Blocks, after libext2fs dropped a too-small last group.
    pub blocks: u64,
    /// Blocks per group.
    pub blocks_per_group: u64,
    /// Inodes per group.
    pub inodes_per_group: u32,
    /// Reserved GDT blocks mke2fs gives it.
    pub reserved_gdt_blocks: u64,
}

impl FinalLayout {
    /// Groups of the full filesystem.
    pub fn groups(&self) -> u64 {
        self.blocks.div_ceil(self.blocks_per_group)
    }
}

/// Lay out the full filesystem in memory over `image` (already sized) and read its layout.
pub fn final_layout(
    image: &Path,
    mut full_param: ffi::ext2_super_block,
) -> Result<FinalLayout, Ext2Error> {
    let fs = Ext2Fs::initialize(image, ffi::EXT2_FLAG_64BITS, &mut full_param)?;
    let sb = fs.sb();
    let layout = FinalLayout {
        blocks: fs.block_count(),
        blocks_per_group: u64::from(sb.s_blocks_per_group),
        inodes_per_group: sb.s_inodes_per_group,
        reserved_gdt_blocks: u64::from(sb.s_reserved_gdt_blocks),
    };
    // Dropped without ext2fs_close: nothing of the full layout is written.
    drop(fs);
    Ok(layout)
}

/// The geometry and superblock template of the initial filesystem, or `None` when the
/// initial size already covers the full one (a plain full format then).
pub fn initial_params(
    full: &Geometry,
    layout: &FinalLayout,
    initial_bytes: u64,
    opts: &FormatOptions,
) -> Result<Option<(Geometry, ffi::ext2_super_block)>, RequestError> {
    let bpg = layout.blocks_per_group.max(1);
    let groups = (initial_bytes / u64::from(BLOCK_SIZE) / bpg).max(1);
    if groups * bpg >= layout.blocks {
        return Ok(None);
    }
    if !full.resize_inode {
        return Err(RequestError::GrowthTooLarge);
    }
    let desc_final = layout.groups().div_ceil(DESC_PER_BLOCK);
    let desc_initial = groups.div_ceil(DESC_PER_BLOCK);
    // The growth takes `desc_final - desc_initial` blocks from the reserve; what mke2fs would
    // reserve for the full size comes on top, as far as the resize inode can point.
    let growth = desc_final - desc_initial;
    if growth > MAX_RESERVED_GDT {
        return Err(RequestError::GrowthTooLarge);
    }
    let reserve = (layout.reserved_gdt_blocks + growth).min(MAX_RESERVED_GDT);
    let blocks = groups * bpg;
    let geometry = Geometry {
        blocks,
        inodes: u64::from(layout.inodes_per_group) * groups,
        // Online growth keeps the reserve as an integer percentage, truncated
        // (`r_blocks * 100 / blocks`, then `× added / 100`, ext4_update_super in
        // fs/ext4/resize.c): round up here, or 5 % of the initial size reads as 4 %.
        reserved_blocks: (opts.reserved_percent * blocks as f64 / 100.0).ceil() as u64,
        resize_inode: true,
    };
    let mut param = super::superblock_params(&geometry, opts.journal);
    // ext2fs_initialize takes a non-zero reserve from the template (`set_field`).
    param.s_reserved_gdt_blocks =
        u16::try_from(reserve).map_err(|_| RequestError::GrowthTooLarge)?;
    Ok(Some((geometry, param)))
}

/// The smallest journal (in blocks) whose largest transaction holds one online-resize step.
///
/// `ext4_flex_group_add` (fs/ext4/resize.c) starts one handle of `3 + 1 + ⌈groups / 64⌉ +
/// reserved_gdb` credits for a chunk of up to 16 groups, and a jbd2 transaction holds at most a
/// quarter of the journal (`j_max_transaction_buffers`: `j_total_len / 4`, less the fast-commit
/// area, which our filesystems do not have). mke2fs reserves 1023–1024 GDT blocks from 8 GiB up,
/// so the 16 MiB journal of a small initial filesystem (4096 blocks: 1024 credits) cannot hold
/// a step (1028–1029 credits). Linux 6.1 was seen to fail the first step with ENOSPC at
/// 32 GiB, and at 8 GiB to spin in `start_this_handle` until the soft-lockup watchdog fired
/// (`vm_grow_negative_controls` with this floor removed). 16 credits of
/// slack cover the revoke blocks jbd2 may add to a handle. Rounded up to whole MiB: 17 MiB from
/// 8 GiB up, 9 MiB at 4 GiB (below the 16 MiB mke2fs gives the initial filesystem).
pub fn min_journal_blocks(reserved_gdt_blocks: u64) -> u64 {
    let credits = 3 + 1 + 1 + reserved_gdt_blocks + 16;
    (4 * credits).div_ceil(256) * 256
}

/// Store `noinit_itable` in the superblock's mount options (after `ext2fs_initialize`, which
/// does not copy them from the template).
pub fn set_growth_mount_opts(sb: &mut ffi::ext2_super_block) {
    sb.s_mount_opts = [0; 64];
    sb.s_mount_opts[..GROWTH_MOUNT_OPTS.len()].copy_from_slice(GROWTH_MOUNT_OPTS);
}
