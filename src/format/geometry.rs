//! The geometry Debian's `mke2fs -t ext4` would choose for a given size, restricted to 4 KiB blocks.
//!
//! mke2fs picks a "size class" from the device size (`misc/mke2fs.c`, `parse_fs_type`) and reads
//! that class's stanza of `/etc/mke2fs.conf`. Debian 12's file (e2fsprogs 1.47.0) gives:
//! `floppy` (< 3 MiB, inode_ratio 8192), `small` (< 512 MiB, inode_ratio 4096), `default`
//! (inode_ratio 16384), `big` (>= 4 TiB, inode_ratio 32768), `huge` (>= 16 TiB, inode_ratio 65536),
//! inode_size 256 everywhere. `floppy` and `small` also ask for 1 KiB blocks; this crate always
//! uses 4 KiB blocks, so below 512 MiB it matches `mke2fs -t ext4 -b 4096` instead.

/// Block size used at every size (bytes). 1 KiB blocks are never used.
pub const BLOCK_SIZE: u32 = 4096;

/// `log2(BLOCK_SIZE) - 10`, the superblock's `s_log_block_size`.
pub const LOG_BLOCK_SIZE: u32 = 2;

/// Inode size of every class in Debian's `/etc/mke2fs.conf` (`[defaults] inode_size = 256`).
pub const INODE_SIZE: u16 = 256;

/// `flex_bg` group count: mke2fs' default `flex_bg_size` (16, `misc/mke2fs.c`), stored as log2.
pub const LOG_GROUPS_PER_FLEX: u8 = 4;

/// Smallest image accepted: 8 MiB, the size below which `ext2fs_default_journal_size`
/// (`lib/ext2fs/mkjournal.c`, fewer than 2048 blocks) refuses a journal.
pub const MIN_SIZE_BYTES: u64 = 8 << 20;

/// Largest block count: 2^32 blocks of 4 KiB (16 TiB) keeps the inode count of every class
/// below 2^32 and is the largest size the tests compare against mke2fs.
pub const MAX_BLOCKS: u64 = 1 << 32;

/// Smallest and largest inode ratio mke2fs accepts for `-i` (`EXT2_MIN_BLOCK_SIZE` and
/// `EXT2_MAX_BLOCK_SIZE * 1024`, `misc/mke2fs.c`).
pub const INODE_RATIO_RANGE: std::ops::RangeInclusive<u32> = 1024..=65536 * 1024;

/// mke2fs' size classes (`misc/mke2fs.c`, `parse_fs_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeClass {
    /// Below 3 MiB.
    Floppy,
    /// Below 512 MiB.
    Small,
    /// Below 4 TiB.
    Default,
    /// Below 16 TiB.
    Big,
    /// 16 TiB and more.
    Huge,
}

impl SizeClass {
    /// The class mke2fs picks for a device of `bytes` bytes.
    pub fn of(bytes: u64) -> SizeClass {
        const MIB: u64 = 1 << 20;
        match bytes {
            b if b < 3 * MIB => SizeClass::Floppy,
            b if b < 512 * MIB => SizeClass::Small,
            b if b < 4 * (1 << 40) => SizeClass::Default,
            b if b < 16 * (1 << 40) => SizeClass::Big,
            _ => SizeClass::Huge,
        }
    }

    /// Bytes per inode of the class in Debian's `/etc/mke2fs.conf`.
    pub fn inode_ratio(self) -> u32 {
        match self {
            SizeClass::Floppy => 8192,
            SizeClass::Small => 4096,
            SizeClass::Default => 16384,
            SizeClass::Big => 32768,
            SizeClass::Huge => 65536,
        }
    }
}

/// The numbers handed to `ext2fs_initialize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Filesystem size in 4 KiB blocks.
    pub blocks: u64,
    /// Requested inode count (libext2fs rounds it up to fill whole inode-table blocks).
    pub inodes: u64,
    /// Reserved blocks for root.
    pub reserved_blocks: u64,
    /// Whether mke2fs would keep `resize_inode`: it drops it when the block count no longer
    /// fits in 32 bits (`misc/mke2fs.c`: "resize_inode not supported with more than 2^32
    /// blocks"), i.e. at 16 TiB.
    pub resize_inode: bool,
}

/// Why a request cannot be formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Smaller than `MIN_SIZE_BYTES`.
    #[error("the size is below the 8 MiB minimum")]
    TooSmall,
    /// More than `MAX_BLOCKS` blocks.
    #[error("the size is above the 16 TiB maximum")]
    TooLarge,
    /// Inode ratio outside `INODE_RATIO_RANGE`.
    #[error("the inode ratio is outside 1024..=67108864 bytes per inode")]
    InodeRatio,
    /// Reserved percentage outside 0..=50 (mke2fs' `-m` limit).
    #[error("the reserved percentage is outside 0..=50")]
    ReservedPercent,
    /// The inode count would not fit in 32 bits or the inode tables would fill the device.
    #[error("the inode ratio gives too many inodes for this size")]
    TooManyInodes,
    /// The label is longer than the 16 bytes of `s_volume_name`.
    #[error("the label is longer than 16 bytes")]
    LabelTooLong,
    /// Growing online to the full size would need more reserved GDT blocks than a resize
    /// inode holds (the kernel would convert to meta_bg, reading GDT blocks never written).
    #[error("the full size is too large to reach by online growth from a fast start (about 8 TiB at most)")]
    GrowthTooLarge,
}

impl Geometry {
    /// Compute the geometry for `size_bytes` (rounded down to whole blocks).
    pub fn new(
        size_bytes: u64,
        inode_ratio: Option<u32>,
        reserved_percent: f64,
    ) -> Result<Geometry, RequestError> {
        let blocks = size_bytes / u64::from(BLOCK_SIZE);
        if blocks * u64::from(BLOCK_SIZE) < MIN_SIZE_BYTES {
            return Err(RequestError::TooSmall);
        }
        if blocks > MAX_BLOCKS {
            return Err(RequestError::TooLarge);
        }
        if !(0.0..=50.0).contains(&reserved_percent) {
            return Err(RequestError::ReservedPercent);
        }
        let bytes = blocks * u64::from(BLOCK_SIZE);
        let ratio = match inode_ratio {
            Some(r) if INODE_RATIO_RANGE.contains(&r) => r,
            Some(_) => return Err(RequestError::InodeRatio),
            None => SizeClass::of(bytes).inode_ratio(),
        };
        // Same integer arithmetic as mke2fs (`blocks * blocksize / inode_ratio`).
        let inodes = bytes / u64::from(ratio);
        if inodes > u64::from(u32::MAX) || inodes * u64::from(INODE_SIZE) >= bytes {
            return Err(RequestError::TooManyInodes);
        }
        // mke2fs: `reserved_ratio * blocks / 100.0`, truncated.
        let reserved_blocks = (reserved_percent * blocks as f64 / 100.0) as u64;
        Ok(Geometry {
            blocks,
            inodes,
            reserved_blocks,
            resize_inode: blocks <= u64::from(u32::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;

    /// The class boundaries are those of mke2fs' parse_fs_type.
    #[test]
    fn size_class_boundaries() {
        assert_eq!(SizeClass::of(3 * (1 << 20) - 1), SizeClass::Floppy);
        assert_eq!(SizeClass::of(3 * (1 << 20)), SizeClass::Small);
        assert_eq!(SizeClass::of(512 * (1 << 20) - 4096), SizeClass::Small);
        assert_eq!(SizeClass::of(512 * (1 << 20)), SizeClass::Default);
        assert_eq!(SizeClass::of(4 * TIB - 4096), SizeClass::Default);
        assert_eq!(SizeClass::of(4 * TIB), SizeClass::Big);
        assert_eq!(SizeClass::of(16 * TIB - 4096), SizeClass::Big);
        assert_eq!(SizeClass::of(16 * TIB), SizeClass::Huge);
    }

    /// Inode and reserved counts agree with what Debian's mke2fs printed for these sizes.
    #[test]
    fn counts_match_measured_mke2fs() {
        let g = Geometry::new(64 << 20, None, 5.0).unwrap();
        assert_eq!((g.blocks, g.inodes, g.reserved_blocks), (16384, 16384, 819));
        let g = Geometry::new(TIB, None, 5.0).unwrap();
        assert_eq!(
            (g.blocks, g.inodes, g.reserved_blocks),
            (268435456, 67108864, 13421772)
        );
        assert!(g.resize_inode);
        let g = Geometry::new(16 * TIB, None, 5.0).unwrap();
        assert_eq!((g.blocks, g.inodes), (1 << 32, 268435456));
        assert!(!g.resize_inode, "mke2fs drops resize_inode at 2^32 blocks");
    }

    /// Sizes are rounded down to whole blocks, and bad requests are refused.
    #[test]
    fn rounding_and_limits() {
        assert_eq!(
            Geometry::new(GIB + 4095, None, 5.0).unwrap().blocks,
            GIB / 4096
        );
        assert_eq!(
            Geometry::new((8 << 20) - 1, None, 5.0),
            Err(RequestError::TooSmall)
        );
        assert_eq!(
            Geometry::new(17 * TIB, None, 5.0),
            Err(RequestError::TooLarge)
        );
        assert_eq!(
            Geometry::new(GIB, Some(512), 5.0),
            Err(RequestError::InodeRatio)
        );
        assert_eq!(
            Geometry::new(GIB, None, 60.0),
            Err(RequestError::ReservedPercent)
        );
        assert_eq!(
            Geometry::new(GIB, None, f64::NAN),
            Err(RequestError::ReservedPercent)
        );
        assert_eq!(
            Geometry::new(GIB, Some(1024), 5.0).unwrap().inodes,
            GIB / 1024
        );
    }
}
