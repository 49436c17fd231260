//! Online growth of a mounted ext4: what each step must find written, and the resize call.
//!
//! # Why steps, and why these blocks
//! The kernel grows ext4 one chunk of block groups at a time: from the current last group up to
//! the next flex-group boundary, then a whole flex group per chunk (`ext4_setup_next_flex_gd`,
//! fs/ext4/resize.c). It places a chunk's block bitmaps, then its inode bitmaps, then its inode
//! tables at the start of the chunk's first group, after that group's backup superblock and
//! GDT if it has one (`ext4_alloc_group_tables`). With `noinit_itable` it zeroes the inode
//! tables itself, through the mapping, and it writes the backup superblocks, GDT copies and
//! reserved GDT blocks. But it **reads** blocks nobody wrote on an unwiped integrity device:
//! the new last block of the filesystem (`ext4_resize_fs` reads it first and aborts with ENOSPC
//! if it cannot), and, to checksum them, the bitmaps of new uninitialised groups
//! (`ext4_setup_new_descs`). So before each step [`GrowStep::zero`] lists, as byte ranges of
//! the mapping: the chunk's metadata run (backup overhead, bitmaps), a read-ahead margin after
//! the inode tables the kernel will write, and the step's new last block.
//!
//! One [`resize_fs`] call per step keeps every step a consistent filesystem: a grower that is
//! killed leaves a smaller, clean filesystem, and the next grow resumes from it.
//!
//! # The superblock is read back from the device
//! In confidential computing the host controls the disk; [`Ext4Geometry::parse`] refuses any
//! value this tool would not have written (block size, group size, descriptor size, features),
//! so a tampered superblock cannot steer the zeroing outside the mapping's free space.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::class::{class_of_io, ErrorClass};
use crate::extent::ByteRange;

/// Byte offset of the primary superblock.
pub const SUPERBLOCK_OFFSET: u64 = 1024;

/// Size of the superblock.
pub const SUPERBLOCK_BYTES: usize = 1024;

/// `EXT4_SUPER_MAGIC`.
const MAGIC: u16 = 0xEF53;

/// The only block size this tool formats.
const BLOCK_SIZE: u64 = 4096;

/// `EXT4_FEATURE_INCOMPAT_META_BG`: growth past the resize inode's reserve; never ours.
const INCOMPAT_META_BG: u32 = 0x10;
/// `EXT4_FEATURE_INCOMPAT_64BIT`.
const INCOMPAT_64BIT: u32 = 0x80;
/// `EXT4_FEATURE_INCOMPAT_FLEX_BG`.
const INCOMPAT_FLEX_BG: u32 = 0x200;
/// `EXT4_FEATURE_RO_COMPAT_SPARSE_SUPER`.
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
/// `EXT4_FEATURE_COMPAT_SPARSE_SUPER2`.
const COMPAT_SPARSE_SUPER2: u32 = 0x200;
/// `EXT4_FEATURE_COMPAT_RESIZE_INODE`.
const COMPAT_RESIZE_INODE: u32 = 0x10;

/// Margin zeroed after the inode tables the kernel writes, for read-ahead of buffered readers
/// (e2fsck): at least the kernel's default 128 KiB.
pub const DEFAULT_READ_AHEAD: u64 = 128 << 10;

/// The values of a live ext4 superblock that growth depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ext4Geometry {
    /// Blocks in the filesystem now.
    pub blocks: u64,
    /// `s_first_data_block` (0 with 4 KiB blocks).
    pub first_data_block: u64,
    /// Blocks per group.
    pub blocks_per_group: u64,
    /// Inodes per group.
    pub inodes_per_group: u64,
    /// Inode size in bytes.
    pub inode_size: u64,
    /// Reserved GDT blocks left.
    pub reserved_gdt_blocks: u64,
    /// Groups per flex group.
    pub groups_per_flex: u64,
    /// `s_mount_opts`, NUL-trimmed.
    pub mount_opts: [u8; 64],
    /// Whether the file system has a resize inode (`COMPAT_RESIZE_INODE`): every fast start
    /// does; a full format, which never grows, has none since issue 27.
    pub resize_inode: bool,
}

/// Why growth could not proceed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResizeError {
    /// Reading the superblock from the mapping failed.
    #[error("read the ext4 superblock of {}", device.display())]
    Read {
        /// The mapping.
        device: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The superblock holds a value this tool never writes.
    #[error("ext4 superblock of {}: {what} is {value}, which this tool never formats", device.display())]
    Unexpected {
        /// The mapping.
        device: PathBuf,
        /// The field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// The filesystem is larger than the target (someone else grew it, or a wrong target).
    #[error("{}: the filesystem has {blocks} blocks, more than the {target} to grow to", device.display())]
    BeyondTarget {
        /// The mapping.
        device: PathBuf,
        /// Blocks now.
        blocks: u64,
        /// Target blocks.
        target: u64,
    },
    /// `EXT4_IOC_RESIZE_FS` failed.
    #[error("grow the filesystem mounted at {} to {blocks} blocks", mount.display())]
    Ioctl {
        /// The mount point.
        mount: PathBuf,
        /// The block count asked for.
        blocks: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl ResizeError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ResizeError::Read { source, .. } | ResizeError::Ioctl { source, .. } => {
                class_of_io(source)
            }
            ResizeError::Unexpected { .. } | ResizeError::BeyondTarget { .. } => ErrorClass::Io,
        }
    }
}

impl Ext4Geometry {
    /// Parse the 1024-byte superblock `sb` of `device`, refusing what this tool never writes.
    pub fn parse(sb: &[u8; SUPERBLOCK_BYTES], device: &Path) -> Result<Ext4Geometry, ResizeError> {
        let le16 = |o: usize| u64::from(u16::from_le_bytes([sb[o], sb[o + 1]]));
        let le32 = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
        let bad = |what: &'static str, value: u64| ResizeError::Unexpected {
            device: device.to_path_buf(),
            what,
            value,
        };
        let magic = le16(0x38);
        if magic != u64::from(MAGIC) {
            return Err(bad("the magic", magic));
        }
        let log_block = u64::from(le32(0x18));
        if log_block != 2 {
            return Err(bad("log2(block size) - 10", log_block));
        }
        let (compat, incompat, ro_compat) = (le32(0x5C), le32(0x60), le32(0x64));
        let want = INCOMPAT_64BIT | INCOMPAT_FLEX_BG;
        if incompat & want != want || incompat & INCOMPAT_META_BG != 0 {
            return Err(bad("the incompatible feature set", u64::from(incompat)));
        }
        if ro_compat & RO_COMPAT_SPARSE_SUPER == 0 || compat & COMPAT_SPARSE_SUPER2 != 0 {
            return Err(bad("the compatible feature set", u64::from(compat)));
        }
        let resize_inode = compat & COMPAT_RESIZE_INODE != 0;
        let blocks = u64::from(le32(0x04)) | (u64::from(le32(0x150)) << 32);
        let first_data_block = u64::from(le32(0x14));
        let blocks_per_group = u64::from(le32(0x20));
        let inodes_per_group = u64::from(le32(0x28));
        let inode_size = le16(0x58);
        let reserved_gdt_blocks = le16(0xCE);
        let desc_size = le16(0xFE);
        let log_flex = u64::from(sb[0x174]);
        if blocks_per_group != BLOCK_SIZE * 8 {
            return Err(bad("blocks per group", blocks_per_group));
        }
        if first_data_block != 0 {
            return Err(bad("the first data block", first_data_block));
        }
        if blocks == 0 || blocks > 1 << 32 {
            return Err(bad("the block count", blocks));
        }
        if inodes_per_group == 0 || inodes_per_group > BLOCK_SIZE * 8 || inodes_per_group % 8 != 0 {
            return Err(bad("inodes per group", inodes_per_group));
        }
        if !(128..=BLOCK_SIZE).contains(&inode_size) || !inode_size.is_power_of_two() {
            return Err(bad("the inode size", inode_size));
        }
        if desc_size != 64 {
            return Err(bad("the group descriptor size", desc_size));
        }
        if reserved_gdt_blocks > BLOCK_SIZE / 4 || (!resize_inode && reserved_gdt_blocks != 0) {
            return Err(bad("reserved GDT blocks", reserved_gdt_blocks));
        }
        if log_flex > 16 {
            return Err(bad("log2(groups per flex group)", log_flex));
        }
        let mut mount_opts = [0u8; 64];
        mount_opts.copy_from_slice(&sb[0x200..0x240]);
        Ok(Ext4Geometry {
            blocks,
            first_data_block,
            blocks_per_group,
            inodes_per_group,
            inode_size,
            reserved_gdt_blocks,
            groups_per_flex: 1 << log_flex,
            mount_opts,
            resize_inode,
        })
    }

    /// Read and parse the primary superblock of the filesystem on `file` (the mapping). A
    /// buffered read sees what the mounted filesystem last put in the page cache.
    pub fn read(file: &File, device: &Path) -> Result<Ext4Geometry, ResizeError> {
        let mut sb = [0u8; SUPERBLOCK_BYTES];
        file.read_exact_at(&mut sb, SUPERBLOCK_OFFSET)
            .map_err(|source| ResizeError::Read {
                device: device.to_path_buf(),
                source,
            })?;
        Ext4Geometry::parse(&sb, device)
    }

    /// Whether this file system is a fast start this tool can grow: it asks every mount for
    /// `noinit_itable` (so the kernel zeroes new inode tables itself) and has the resize inode
    /// whose reserve the growth takes its descriptor blocks from. A full format has neither.
    pub fn is_growable(&self) -> bool {
        self.has_noinit_itable() && self.resize_inode
    }

    /// Whether the superblock asks every mount for `noinit_itable`.
    pub fn has_noinit_itable(&self) -> bool {
        let end = self.mount_opts.iter().position(|&b| b == 0).unwrap_or(64);
        self.mount_opts[..end]
            .split(|&b| b == b',')
            .any(|o| o == b"noinit_itable")
    }

    /// Groups for `blocks` blocks.
    fn groups(&self, blocks: u64) -> u64 {
        (blocks - self.first_data_block).div_ceil(self.blocks_per_group)
    }

    /// Inode table blocks per group.
    fn itable_blocks(&self) -> u64 {
        (self.inodes_per_group * self.inode_size).div_ceil(BLOCK_SIZE)
    }
}

/// Whether `group` holds a backup superblock and GDT (`sparse_super`: 0, 1 and the powers of
/// 3, 5 and 7; `ext4_bg_has_super`).
pub fn has_backup(group: u64) -> bool {
    if group <= 1 {
        return true;
    }
    [3u64, 5, 7].iter().any(|&base| {
        let mut g = base;
        while g < group {
            g = g.saturating_mul(base);
        }
        g == group
    })
}

/// One growth step: zero `zero` on the mapping, then ask the kernel for `blocks` blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowStep {
    /// The block count after the step.
    pub blocks: u64,
    /// Byte ranges of the mapping that must be written before the step: sorted, disjoint,
    /// whole blocks, all beyond the current end of the filesystem.
    pub zero: Vec<ByteRange>,
}

/// The next step from the filesystem `geom` towards `target` blocks, `None` once there.
///
/// `read_ahead` is the margin zeroed after the inode tables the kernel writes.
pub fn next_step(geom: &Ext4Geometry, target: u64, read_ahead: u64) -> Option<GrowStep> {
    if geom.blocks >= target {
        return None;
    }
    let bpg = geom.blocks_per_group;
    let end_of_last = geom.first_data_block + geom.groups(geom.blocks) * bpg;
    if geom.blocks < end_of_last {
        // A partial last group is extended first (ext4_group_extend): only the new last block.
        let blocks = end_of_last.min(target);
        return Some(GrowStep {
            blocks,
            zero: vec![block_range(blocks - 1, 1)],
        });
    }
    let first = geom.groups(geom.blocks);
    let flex = geom.groups_per_flex.max(1);
    let chunk_end = ((first / flex) + 1) * flex;
    let last_group = geom.groups(target);
    let end = chunk_end.min(last_group);
    let count = end - first;
    let blocks = (geom.first_data_block + end * bpg).min(target);
    let start = geom.first_data_block + first * bpg;
    let gdt_after = geom.groups(blocks).div_ceil(BLOCK_SIZE / 64);
    let overhead = if has_backup(first) {
        1 + gdt_after + geom.reserved_gdt_blocks
    } else {
        0
    };
    let bitmaps = 2 * count;
    let tables = count * geom.itable_blocks();
    let margin = read_ahead.max(DEFAULT_READ_AHEAD).div_ceil(BLOCK_SIZE);
    let mut zero = vec![block_range(start, overhead + bitmaps)];
    // The run after the kernel's inode tables, clipped to the step's end.
    let after = start + overhead + bitmaps + tables;
    let after_end = (after + margin).min(blocks);
    if after < after_end {
        zero.push(block_range(after, after_end - after));
    }
    let last = blocks - 1;
    if zero.iter().all(|r| r.end() <= last * BLOCK_SIZE) {
        zero.push(block_range(last, 1));
    }
    Some(GrowStep { blocks, zero })
}

fn block_range(first: u64, count: u64) -> ByteRange {
    ByteRange {
        start: first * BLOCK_SIZE,
        len: count * BLOCK_SIZE,
    }
}

mod ioctl {
    //! `EXT4_IOC_RESIZE_FS`: `_IOW('f', 16, __u64)` (include/uapi/linux/ext4.h).
    #![allow(missing_docs)]
    nix::ioctl_write_ptr!(ext4_ioc_resize_fs, b'f', 16, u64);
}
use ioctl::ext4_ioc_resize_fs;

/// Grow the filesystem mounted at `mount` (`dir` is open on it) to `blocks` blocks
/// (`EXT4_IOC_RESIZE_FS`, include/uapi/linux/ext4.h). Blocks until the kernel is done.
pub fn resize_fs(dir: &File, mount: &Path, blocks: u64) -> Result<(), ResizeError> {
    // SAFETY: `dir` is an open descriptor for the call's duration; the kernel reads one u64
    // from the pointer, which points at a live local.
    let r = unsafe { ext4_ioc_resize_fs(dir.as_raw_fd(), &blocks) };
    r.map(|_| ()).map_err(|e| ResizeError::Ioctl {
        mount: mount.to_path_buf(),
        blocks,
        source: io::Error::from(e),
    })
}

#[cfg(test)]
mod tests;
