//! Fast start: the first block groups of a filesystem laid out to grow online to the full size.
//!
//! # Why
//! Everything a full format writes grows with the disk: the inode tables are 1/64 of it and
//! the journal up to 1 GiB, and all of it must be written through the unwiped integrity
//! device before the first mount. A small filesystem is ready in constant time; the kernel
//! then grows it online (`EXT4_IOC_RESIZE_FS`) and, with `noinit_itable`, zeroes each new
//! group's inode table itself, through the mapping, before the group becomes visible.
//!
//! # What makes the grown filesystem the one the full format makes
//! The full size is laid out first, in memory only (`ext2fs_initialize` on the image file,
//! freed without writing), and three of its values are carried over:
//! - **inodes per group**: the initial filesystem gets `inodes_per_group × groups` inodes, which
//!   `ext2fs_initialize` turns back into exactly that many per group; online growth keeps it;
//! - **reserved GDT blocks**: exactly the descriptor blocks the growth to the device's own
//!   size will take (`fs/ext4/resize.c` moves reserved blocks into the GDT as groups are
//!   added), at least one (`ext2fs_initialize` reads a zero in the template as "mke2fs'
//!   default"). The device never grows past its size, so mke2fs' reserve for 1024× growth
//!   (511 blocks per copy at 4 GiB, 1024 from 8 GiB up, in every backup group) would be
//!   written for nothing, and the resize step's journal credits grow with it. The grown
//!   filesystem ends with the full format's descriptors and (at most one block of) reserve.
//!   When the reserve runs out the kernel converts to `meta_bg`, whose new GDT blocks it
//!   reads before writing them: on an unwiped device that read fails, so a size whose growth
//!   needs more than the 1024 block pointers of the resize inode's indirect block (about
//!   8 TiB) is refused instead;
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
    let reserve = reserve_for_growth(layout.groups(), groups)?;
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

/// Reserved GDT blocks for growing from `initial_groups` to `final_groups`: the descriptor
/// blocks the growth adds, and at least one (a zero in `ext2fs_initialize`'s template means
/// "mke2fs' default"). Nothing more: the device never grows past its own size.
pub fn reserve_for_growth(final_groups: u64, initial_groups: u64) -> Result<u64, RequestError> {
    let growth = final_groups.div_ceil(DESC_PER_BLOCK) - initial_groups.div_ceil(DESC_PER_BLOCK);
    if growth > MAX_RESERVED_GDT {
        return Err(RequestError::GrowthTooLarge);
    }
    Ok(growth.max(1))
}

/// The smallest journal (in blocks) whose largest transaction holds one online-resize step.
///
/// `ext4_flex_group_add` (fs/ext4/resize.c) starts one handle of `3 + 1 + ⌈groups / 64⌉ +
/// reserved_gdb` credits for a chunk of up to 16 groups, and a jbd2 transaction holds at most a
/// quarter of the journal (`j_max_transaction_buffers`: `j_total_len / 4`, less the fast-commit
/// area, which our filesystems do not have). With mke2fs' reserve (1023–1024 GDT blocks from
/// 8 GiB up) a step needed 1028–1029 credits, more than the 16 MiB journal of a 512 MiB
/// filesystem holds: Linux 6.1 was seen to fail the first step with ENOSPC at 32 GiB, and at
/// 8 GiB to spin in `start_this_handle` until the soft-lockup watchdog fired. The reserve is
/// now only what the growth takes ([`reserve_for_growth`]: 1 block at 4 GiB, 3 at 32 GiB,
/// 1024 only near 8 TiB), so the floor exceeds the 4 MiB default journal only when the growth
/// adds more than 235 descriptor blocks (about 2 TiB and up); it stays because a too-small
/// journal hangs the kernel rather than failing. 16 credits of
/// slack cover the revoke blocks jbd2 may add to a handle. Rounded up to whole MiB.
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
