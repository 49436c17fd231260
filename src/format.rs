//! Build an ext4 image in a sparse file with e2fsprogs' libext2fs, plus the list of byte ranges
//! the pipeline must zero on the device before it copies the image.
//!
//! # Why a library call and not mke2fs
//! mke2fs on a file punches holes and then trusts them to read as zeros: inode tables and the
//! journal end up as holes, flagged "zeroed", and a sparse copy never writes them. On an unwiped
//! dm-integrity device those blocks read back as EIO. Here the image is laid out through
//! libext2fs directly (the private `fs` module wraps the handle, `ffi` holds the bindgen
//! bindings), and the
//! blocks that the image leaves as holes but that the kernel or e2fsck will read are returned as
//! [`FormatPlan::zero_ranges`].
//!
//! # The steps of [`build_image`]
//! 1. [`geometry`] turns the size and options into what Debian's `mke2fs -t ext4` would pick:
//!    4 KiB blocks (always; below 512 MiB mke2fs would pick 1 KiB, so there the reference is
//!    `mke2fs -t ext4 -b 4096`), inode size 256, inode ratio by size class, flex_bg 16, 5%
//!    reserved, and the ext4 feature set of Debian 12 (`has_journal ext_attr resize_inode
//!    dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink
//!    extra_isize metadata_csum`; `resize_inode` is dropped at 2^32 blocks as mke2fs does).
//!    A full format also drops `resize_inode`: a scratch disk never outgrows its device, and
//!    the reserve mke2fs keeps for 1024× online growth is written through the mapping in every
//!    backup group (511 blocks per copy, eight copies: 16 MiB at 4 GiB) for nothing. Only the
//!    fast start, which does grow, keeps a resize inode (see `growth`).
//! 2. `ext2fs_initialize` lays out the groups in memory; UUID, hash seed and label are set and
//!    the checksum seed derived from the UUID.
//! 3. `ext2fs_allocate_tables` places bitmaps and inode tables; the root directory,
//!    `lost+found` (16 KiB, mode 0700), the reserved inodes, the bad-block inode and the resize
//!    inode are written as mke2fs writes them.
//! 4. The journal inode gets mke2fs' default size (`ext2fs_get_journal_params`), at most
//!    [`JOURNAL_MAX_BYTES`] (measured, not habit), with the lazy flag, so libext2fs writes only
//!    the journal superblock.
//! 5. Every group descriptor is flagged `ITABLE_ZEROED`: the pipeline zeroes the inode tables
//!    before anything can mount the filesystem, so the kernel need not.
//! 6. The zero ranges are collected: every inode table, every block and inode bitmap (libext2fs
//!    leaves those of `*_UNINIT` groups as holes, yet e2fsck and the kernel's lazyinit thread
//!    read them), the superblock/descriptor/reserved-GDT area of every group that has one, and
//!    every block of the journal (a journal never written cannot be replayed).
//! 7. `ext2fs_close` flushes superblocks, descriptors and bitmaps; the file's data extents are
//!    measured with `SEEK_DATA`, exactly as the copy will see them.
//!
//! The pipeline zeroes every range first and then copies the image's data extents on top, so
//! the union of both covers every block that anything reads.

mod ffi;
mod fs;
pub mod geometry;
mod growth;
pub mod plan;

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};

use crate::class::{class_of_io, ErrorClass};
pub use crate::extent::ByteRange;
use crate::extent::ExtentError;
pub use fs::Ext2Error;
use fs::Ext2Fs;
#[cfg(any(test, feature = "test-support"))]
pub use geometry::SizeClass;
pub use geometry::{Geometry, RequestError, BLOCK_SIZE};
pub use plan::data_extents;
use plan::RangeBuilder;

/// libext2fs is not thread-safe in general (com_err tables, global I/O manager state): one
/// image at a time per process.
static LIBEXT2FS: Mutex<()> = Mutex::new(());

/// First inode that is not reserved (`EXT2_GOOD_OLD_FIRST_INO`, `lib/ext2fs/ext2_fs.h`).
const FIRST_INO: u32 = ffi::EXT2_GOOD_OLD_FIRST_INO;

/// Debian's `[defaults] default_mntopts = acl,user_xattr` of `/etc/mke2fs.conf`.
const DEFAULT_MOUNT_OPTS: u32 = ffi::EXT2_DEFM_XATTR_USER | ffi::EXT2_DEFM_ACL;

/// The largest journal made by default: 4 MiB, by measurement (`scripts/vm-bench-journal.sh`,
/// docs/BENCHMARKS.md "Journal size"). mke2fs sizes the journal by habit, from 4 MiB below
/// 128 MiB up to 1 GiB from 128 GiB, and every journal block is written through dm-crypt and
/// dm-integrity before the first mount (64 MiB at 4 GiB). A metadata-heavy run on the scratch
/// disk's own stack (4 writers creating and fsyncing 4000 files of 4 KiB, three interleaved
/// rounds per size) ran at a median 43.5 files/s with 4 MiB against 39.1 with 64 MiB, and
/// wrote 6 % fewer bytes (129.6 against 138.0 MB a run; under emulation time is those
/// bytes): each fsync commits a small transaction, and a smaller journal only checkpoints
/// sooner what writeback writes anyway. That machine's load made single runs vary by up to
/// 3.3×; on a quieter machine 4 MiB ran at 0.94× of 64 MiB (three rounds): at the edge of
/// the issue's 5 %, so a longer quiet run may move this to 8 MiB. 4 MiB is also libext2fs'
/// smallest default (1024 blocks). Smaller filesystems keep mke2fs' smaller journal;
/// `full_journal` still asks for mke2fs' size for the full disk.
pub const JOURNAL_MAX_BYTES: u64 = 4 << 20;

/// [`JOURNAL_MAX_BYTES`] in 4 KiB blocks.
const JOURNAL_MAX_BLOCKS: u32 = (JOURNAL_MAX_BYTES / BLOCK_SIZE as u64) as u32;

/// Options of the ext4 image. The defaults are those of Debian's `mke2fs -t ext4`, except
/// that the journal is at most `JOURNAL_MAX_BYTES` (4 MiB) and a full format has no resize inode.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatOptions {
    /// Bytes per inode; `None` uses mke2fs' size class.
    pub inode_ratio: Option<u32>,
    /// Create a journal (default true).
    pub journal: bool,
    /// Blocks reserved for root, in percent (default 5.0).
    pub reserved_percent: f64,
    /// Volume label, at most 16 bytes.
    pub label: Option<String>,
    /// Filesystem UUID; `None` draws a random (version 4) one.
    pub uuid: Option<[u8; 16]>,
    /// Fast start: build only the first `initial_bytes` (rounded down to whole block groups) of
    /// the filesystem, laid out so that growing it online to the full size gives what mke2fs
    /// gives the full size: the same inodes per group, enough reserved GDT blocks, the same
    /// features. `noinit_itable` is stored in the superblock's mount options, so whoever
    /// mounts it has the kernel zero each new group's inode table as it grows.
    pub initial_bytes: Option<u64>,
    /// With `initial_bytes`: size the journal for the full filesystem as mke2fs would (up to
    /// 1 GiB, above the measured default of every other format) instead of for the initial
    /// one. A journal cannot grow online, but all of it must
    /// be written before the first mount, which costs time proportional to the final size.
    pub full_journal: bool,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            inode_ratio: None,
            journal: true,
            reserved_percent: 5.0,
            label: None,
            uuid: None,
            initial_bytes: None,
            full_journal: false,
        }
    }
}

/// What [`build_image`] produced: the image file is the data, this is everything else the
/// pipeline needs.
#[derive(Debug, Clone, Serialize)]
pub struct FormatPlan {
    /// Filesystem size in bytes: the requested size rounded down to whole blocks, less a last
    /// group too small to hold its own metadata (dropped by libext2fs as by mke2fs). The image
    /// file keeps the requested size.
    pub size_bytes: u64,
    /// Block size (always 4096).
    pub block_size: u32,
    /// Blocks in the filesystem.
    pub block_count: u64,
    /// Blocks of the full-size filesystem this one is laid out to grow to (equal to
    /// `block_count` without fast start): what mke2fs would give the full size.
    pub final_block_count: u64,
    /// Inodes in the filesystem.
    pub inode_count: u64,
    /// Block groups.
    pub group_count: u32,
    /// Journal size in bytes (0 without a journal).
    pub journal_bytes: u64,
    /// Whether the filesystem has a resize inode (only a fast start's: a full format never
    /// grows).
    pub resize_inode: bool,
    /// The filesystem UUID, in the usual 8-4-4-4-12 form.
    pub uuid: String,
    /// Ranges to zero on the device before the image is copied: sorted, merged,
    /// non-overlapping, multiples of the block size. They may overlap the image's data extents
    /// (group 0's tables, the journal superblock): zero first, then copy the image on top.
    pub zero_ranges: Vec<ByteRange>,
    /// Sum of `zero_ranges`.
    pub zero_bytes: u64,
    /// `zero_bytes` by what the blocks are (the parts add up to `zero_bytes`).
    pub zero_owners: ZeroOwners,
    /// Bytes of data in the image file, as `SEEK_DATA` reports them (what the copy writes).
    pub image_data_bytes: u64,
    /// Number of data extents in the image file.
    pub image_extents: usize,
    /// Time taken to build the image and the plan.
    #[serde(serialize_with = "seconds", rename = "elapsed_seconds")]
    pub elapsed: Duration,
}

/// The bytes of a plan's zero ranges by owner. The four kinds of block are disjoint (libext2fs
/// never places two of them on one block), so the parts add up to [`FormatPlan::zero_bytes`].
/// Named so that every byte written before the mount has an owner (issue 27): what is not
/// needed can only be removed once it is seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ZeroOwners {
    /// Primary and backup superblocks and their group descriptor blocks.
    pub superblocks_and_descriptors: u64,
    /// Reserved GDT blocks (the resize inode's reserve for online growth), every copy.
    pub descriptor_reserves: u64,
    /// Block and inode bitmaps.
    pub bitmaps: u64,
    /// Inode tables.
    pub inode_tables: u64,
    /// The journal's blocks (and its extent blocks).
    pub journal: u64,
}

impl ZeroOwners {
    /// The sum of the parts.
    pub fn total(&self) -> u64 {
        self.superblocks_and_descriptors
            + self.descriptor_reserves
            + self.bitmaps
            + self.inode_tables
            + self.journal
    }
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The size or an option cannot be formatted.
    #[error("{}: invalid request", image.display())]
    InvalidRequest {
        /// The image file.
        image: PathBuf,
        /// What is wrong.
        #[source]
        reason: RequestError,
    },
    /// Creating or sizing the image file failed.
    #[error("create the image file {}", image.display())]
    CreateImage {
        /// The image file.
        image: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A libext2fs call failed.
    #[error("{}: {step}", image.display())]
    Ext2fs {
        /// The step, in words.
        step: &'static str,
        /// The image file.
        image: PathBuf,
        /// libext2fs' error.
        #[source]
        source: Ext2Error,
    },
    /// Opening the finished image to read its data map failed.
    #[error("open {} to scan its data extents", image.display())]
    OpenImage {
        /// The image file.
        image: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading the image's data map failed.
    #[error("scan the data extents of {}", image.display())]
    ScanImage {
        /// The image file.
        image: PathBuf,
        /// Why.
        #[source]
        source: ExtentError,
    },
}

impl FormatError {
    /// The class of this error (for exit statuses).
    pub fn class(&self) -> ErrorClass {
        match self {
            FormatError::InvalidRequest { .. } => ErrorClass::InvalidInput,
            FormatError::CreateImage { source, .. } | FormatError::OpenImage { source, .. } => {
                class_of_io(source)
            }
            FormatError::ScanImage { source, .. } => source.class(),
            FormatError::Ext2fs { source, .. } => match source.errno() {
                Some(e) => class_of_io(&io::Error::from_raw_os_error(e)),
                None => ErrorClass::Io,
            },
        }
    }
}

/// Build an ext4 image of `size_bytes` (rounded down to 4 KiB) in the file `image` (created or
/// truncated; it should live on a filesystem that keeps holes, such as tmpfs — not ramfs) and
/// return the plan: which device ranges to zero before copying the image's data extents.
///
/// Needs no privileges: this is what `scratchcrypt format-image` runs.
///
/// ```
/// use scratchcrypt::{build_image, FormatOptions};
///
/// let dir = tempfile::tempdir()?;
/// let image = dir.path().join("scratch.ext4");
/// let plan = build_image(&image, 256 << 20, &FormatOptions::default())?;
/// assert_eq!(plan.size_bytes, 256 << 20);
/// assert_eq!(plan.block_size, 4096);
/// // The inode tables and the journal are holes in the image: they are in the zero plan.
/// assert!(plan.zero_bytes >= plan.journal_bytes);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn build_image(
    image: &Path,
    size_bytes: u64,
    opts: &FormatOptions,
) -> Result<FormatPlan, FormatError> {
    let started = Instant::now();
    let invalid = |reason| FormatError::InvalidRequest {
        image: image.to_path_buf(),
        reason,
    };
    let full =
        Geometry::new(size_bytes, opts.inode_ratio, opts.reserved_percent).map_err(invalid)?;
    let label = opts.label.as_deref().unwrap_or("").as_bytes();
    if label.len() > 16 {
        return Err(invalid(RequestError::LabelTooLong));
    }
    let create = |source| FormatError::CreateImage {
        image: image.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(image)
        .map_err(create)?;
    file.set_len(full.blocks * u64::from(BLOCK_SIZE))
        .map_err(create)?;

    let _guard = LIBEXT2FS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let ext2 = |step| {
        move |source| FormatError::Ext2fs {
            step,
            image: image.to_path_buf(),
            source,
        }
    };
    // A filesystem that will never grow needs no descriptor reserve: no resize inode, no
    // reserved GDT blocks (mke2fs reserves room for 1024× growth: 16 MiB written at 4 GiB).
    let fixed = Geometry {
        resize_inode: false,
        ..full
    };
    let (geometry, mut param, final_blocks) = match opts.initial_bytes {
        None => {
            let param = superblock_params(&fixed, opts.journal);
            (fixed, param, None)
        }
        Some(initial) => {
            let full_param = superblock_params(&full, opts.journal);
            let layout = growth::final_layout(image, full_param)
                .map_err(ext2("lay out the full-size filesystem (ext2fs_initialize)"))?;
            match growth::initial_params(&full, &layout, initial, opts).map_err(invalid)? {
                Some((geometry, param)) => {
                    file.set_len(geometry.blocks * u64::from(BLOCK_SIZE))
                        .map_err(create)?;
                    (geometry, param, Some(layout.blocks))
                }
                // The initial size covers the full one: a plain full format.
                None => (fixed, superblock_params(&fixed, opts.journal), None),
            }
        }
    };
    drop(file);
    let mut fs = Ext2Fs::initialize(image, ffi::EXT2_FLAG_64BITS, &mut param)
        .map_err(ext2("lay out the filesystem (ext2fs_initialize)"))?;
    // ext2fs_initialize drops a last group too small for its own metadata, as mke2fs does.
    let blocks = fs.block_count();
    let uuid = opts.uuid.unwrap_or_else(|| {
        *uuid::Builder::from_random_bytes(rand::random())
            .as_uuid()
            .as_bytes()
    });
    identify(&mut fs, uuid, label);
    if final_blocks.is_some() {
        growth::set_growth_mount_opts(fs.sb_mut());
    }

    fs.allocate_tables()
        .map_err(ext2("place bitmaps and inode tables"))?;
    // mke2fs stores the metadata overhead in the superblock: the blocks in use once the
    // tables are placed (before any directory), plus the journal.
    let mut overhead = fs
        .count_used_clusters(u64::from(fs.sb().s_first_data_block), blocks - 1)
        .map_err(ext2("count metadata blocks"))?;
    fs.mkdir(ffi::EXT2_ROOT_INO, ffi::EXT2_ROOT_INO, c"")
        .map_err(ext2("create the root directory"))?;
    create_lost_and_found(&mut fs).map_err(ext2("create lost+found"))?;
    for ino in ffi::EXT2_ROOT_INO + 1..FIRST_INO {
        fs.reserve_inode(ino);
    }
    fs.reserve_inode(ffi::EXT2_BAD_INO);
    fs.write_empty_badblocks_inode()
        .map_err(ext2("write the bad-block inode"))?;
    fs.mark_all_dirty();
    if geometry.resize_inode {
        fs.create_resize_inode()
            .map_err(ext2("create the resize inode"))?;
    }
    let mut journal_blocks = 0u64;
    if opts.journal {
        let mut params = fs.journal_params().map_err(ext2("size the journal"))?;
        params.num_journal_blocks = params.num_journal_blocks.min(JOURNAL_MAX_BLOCKS);
        if let Some(final_blocks) = final_blocks {
            // A journal cannot grow online: the fast start gets the full format's journal for
            // the full size, so that the grown filesystem has the same free space (or mke2fs'
            // for the full size, uncapped, with `full_journal`).
            if let Some(n) = Ext2Fs::default_journal_blocks(final_blocks) {
                params.num_journal_blocks = if opts.full_journal {
                    n
                } else {
                    n.min(JOURNAL_MAX_BLOCKS)
                };
            }
            // Growth needs a journal that holds one resize step's transaction.
            let floor = growth::min_journal_blocks(u64::from(fs.sb().s_reserved_gdt_blocks));
            let floor = u32::try_from(floor).unwrap_or(u32::MAX);
            params.num_journal_blocks = params.num_journal_blocks.max(floor);
        }
        journal_blocks = u64::from(params.num_journal_blocks) + u64::from(params.num_fc_blocks);
        fs.add_journal_lazy(&mut params)
            .map_err(ext2("create the journal inode"))?;
    }
    overhead += journal_blocks + u64::from(fs.sb().s_first_data_block);
    fs.sb_mut().s_overhead_clusters = u32::try_from(overhead).unwrap_or(0);

    let (zero_ranges, zero_owners) =
        collect_zero_ranges(&mut fs, opts.journal).map_err(ext2("map metadata blocks"))?;
    let group_count = fs.group_count();
    let inode_count = u64::from(fs.sb().s_inodes_count);
    fs.close()
        .map_err(ext2("write the metadata (ext2fs_close)"))?;

    let file = File::open(image).map_err(|source| FormatError::OpenImage {
        image: image.to_path_buf(),
        source,
    })?;
    let extents = data_extents(&file, image).map_err(|source| FormatError::ScanImage {
        image: image.to_path_buf(),
        source,
    })?;
    Ok(FormatPlan {
        size_bytes: blocks * u64::from(BLOCK_SIZE),
        block_size: BLOCK_SIZE,
        block_count: blocks,
        final_block_count: final_blocks.unwrap_or(blocks),
        inode_count,
        group_count,
        journal_bytes: journal_blocks * u64::from(BLOCK_SIZE),
        resize_inode: geometry.resize_inode,
        uuid: uuid::Uuid::from_bytes(uuid).hyphenated().to_string(),
        zero_bytes: zero_ranges.iter().map(|r| r.len).sum(),
        zero_ranges,
        zero_owners,
        image_data_bytes: extents.iter().map(|r| r.len).sum(),
        image_extents: extents.len(),
        elapsed: started.elapsed(),
    })
}

/// The superblock template handed to `ext2fs_initialize`, as mke2fs' `PRS()` fills it.
fn superblock_params(g: &Geometry, journal: bool) -> ffi::ext2_super_block {
    let mut p = ffi::ext2_super_block {
        s_log_block_size: geometry::LOG_BLOCK_SIZE,
        s_log_cluster_size: geometry::LOG_BLOCK_SIZE,
        s_rev_level: ffi::EXT2_DYNAMIC_REV,
        s_inode_size: geometry::INODE_SIZE,
        s_log_groups_per_flex: geometry::LOG_GROUPS_PER_FLEX,
        s_desc_size: ffi::EXT2_MIN_DESC_SIZE_64BIT as u16,
        s_default_mount_opts: DEFAULT_MOUNT_OPTS,
        s_feature_compat: ffi::EXT2_FEATURE_COMPAT_EXT_ATTR | ffi::EXT2_FEATURE_COMPAT_DIR_INDEX,
        s_feature_ro_compat: ffi::EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER
            | ffi::EXT2_FEATURE_RO_COMPAT_LARGE_FILE
            | ffi::EXT4_FEATURE_RO_COMPAT_HUGE_FILE
            | ffi::EXT4_FEATURE_RO_COMPAT_DIR_NLINK
            | ffi::EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE
            | ffi::EXT4_FEATURE_RO_COMPAT_METADATA_CSUM,
        // 64bit must be set before the block count, or its high 32 bits are dropped.
        s_feature_incompat: ffi::EXT2_FEATURE_INCOMPAT_FILETYPE
            | ffi::EXT3_FEATURE_INCOMPAT_EXTENTS
            | ffi::EXT4_FEATURE_INCOMPAT_64BIT
            | ffi::EXT4_FEATURE_INCOMPAT_FLEX_BG,
        s_inodes_count: u32::try_from(g.inodes).unwrap_or(u32::MAX),
        ..Default::default()
    };
    if journal {
        p.s_feature_compat |= ffi::EXT3_FEATURE_COMPAT_HAS_JOURNAL;
    }
    if g.resize_inode {
        p.s_feature_compat |= ffi::EXT2_FEATURE_COMPAT_RESIZE_INODE;
    }
    // SAFETY: both functions only store into the fields of the live superblock `p`.
    unsafe {
        ffi::ext2fs_blocks_count_set(&mut p, g.blocks);
        ffi::ext2fs_r_blocks_count_set(&mut p, g.reserved_blocks);
    }
    p
}

/// UUID, directory hash seed, label and the other fields mke2fs sets after `ext2fs_initialize`.
fn identify(fs: &mut Ext2Fs, uuid: [u8; 16], label: &[u8]) {
    let sb = fs.sb_mut();
    sb.s_uuid = uuid;
    sb.s_hash_seed = rand::random();
    sb.s_def_hash_version = ffi::EXT2_HASH_HALF_MD4 as u8;
    sb.s_checksum_type = ffi::EXT2_CRC32C_CHKSUM as u8;
    sb.s_volume_name = [0; 16];
    sb.s_volume_name[..label.len()].copy_from_slice(label);
    // Debian's mke2fs.conf: enable_periodic_fsck = 0 → no mount-count or interval checks.
    sb.s_max_mnt_count = -1;
    sb.s_checkinterval = 0;
    fs.init_csum_seed();
}

/// `lost+found` as mke2fs makes it: mode 0700, grown to 16 KiB so that e2fsck can fill it
/// without allocating.
fn create_lost_and_found(fs: &mut Ext2Fs) -> Result<(), Ext2Error> {
    let name = c"lost+found";
    fs.set_umask(0o077);
    fs.mkdir(ffi::EXT2_ROOT_INO, 0, name)?;
    fs.set_umask(0o022);
    let ino = fs.lookup(ffi::EXT2_ROOT_INO, name)?;
    let mut size = BLOCK_SIZE;
    while size < 16 * 1024 {
        fs.expand_dir(ino)?;
        size += BLOCK_SIZE;
    }
    Ok(())
}

/// Flag every inode table as zeroed and list what must be zeroed on the device, with the bytes
/// of each kind of block.
fn collect_zero_ranges(
    fs: &mut Ext2Fs,
    journal: bool,
) -> Result<(Vec<ByteRange>, ZeroOwners), Ext2Error> {
    let groups = fs.group_count();
    let sb = fs.sb();
    let blocks_per_group = u64::from(sb.s_blocks_per_group);
    let first_data_block = u64::from(sb.s_first_data_block);
    let reserved_gdt = u64::from(sb.s_reserved_gdt_blocks);
    let itable_blocks =
        u64::from(sb.s_inodes_per_group) * u64::from(sb.s_inode_size) / u64::from(BLOCK_SIZE);
    let mut ranges = RangeBuilder::default();
    let mut owners = ZeroOwners::default();
    let bs = u64::from(BLOCK_SIZE);
    for g in 0..groups {
        fs.set_group_flags(g, ffi::EXT2_BG_INODE_ZEROED as u16)?;
        let l = fs.group_layout(g)?;
        let group_start = first_data_block + u64::from(g) * blocks_per_group;
        // With 4 KiB blocks the primary superblock shares block 0 (reported as 0) with the
        // boot sector; backups start their group.
        let sb_start = if l.super_block != 0 {
            l.super_block
        } else {
            group_start
        };
        ranges.add_blocks(sb_start, l.super_and_gdt_blocks);
        // Without meta_bg the area is superblock, descriptors, then the reserve (when a group
        // has a superblock at all).
        let reserve = reserved_gdt.min(l.super_and_gdt_blocks);
        owners.descriptor_reserves += reserve * bs;
        owners.superblocks_and_descriptors += (l.super_and_gdt_blocks - reserve) * bs;
        ranges.add_blocks(l.block_bitmap, 1);
        ranges.add_blocks(l.inode_bitmap, 1);
        owners.bitmaps += 2 * bs;
        ranges.add_blocks(l.inode_table, itable_blocks);
        owners.inode_tables += itable_blocks * bs;
    }
    if journal {
        let mut journal = RangeBuilder::default();
        fs.inode_blocks(ffi::EXT2_JOURNAL_INO, |b| journal.add_blocks(b, 1))?;
        for r in journal.into_byte_ranges(1) {
            ranges.add_blocks(r.start, r.len);
            owners.journal += r.len * bs;
        }
    }
    Ok((ranges.into_byte_ranges(BLOCK_SIZE), owners))
}

#[cfg(test)]
mod tests;
