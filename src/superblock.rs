//! The dm-integrity superblock: parsed and checked from what the source device gives back.
//!
//! # Why it matters
//! The kernel writes this superblock at the data offset when the header is formatted; its
//! `provided_data_sectors` sizes both device-mapper tables, and its tag size and block size
//! must agree with the LUKS2 header. The source device is untrusted, so the parser refuses
//! anything a LUKS2 format would not have produced ([`SuperblockError`]).
//!
//! Layout: `struct superblock` of `drivers/md/dm-integrity.c` (Linux 6.1), little-endian.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::class::{class_of_io, ErrorClass};

/// Magic at the start of a dm-integrity superblock (`SB_MAGIC`, `drivers/md/dm-integrity.c`).
pub const INTEGRITY_MAGIC: &[u8; 8] = b"integrt\0";

/// Highest superblock version this code knows (`SB_VERSION_5` in Linux 6.1).
pub const INTEGRITY_MAX_VERSION: u8 = 6;

/// `SB_FLAG_HAVE_JOURNAL_MAC`: a journal MAC, which LUKS2 never configures.
const SB_FLAG_HAVE_JOURNAL_MAC: u32 = 1 << 0;

/// `SB_FLAG_RECALCULATING`: tags are being recomputed; not something a fresh format has.
const SB_FLAG_RECALCULATING: u32 = 1 << 1;

/// `SB_FLAG_FIXED_PADDING`: the metadata runs use the fixed padding (dm-integrity 1.5.0 on);
/// the activation table then says `fix_padding` (`dm_table`).
pub const SB_FLAG_FIXED_PADDING: u32 = 1 << 3;

/// `SB_FLAG_FIXED_HMAC`: formatted with `fix_hmac` (dm-integrity 1.7.0 on); the activation
/// table then says `fix_hmac`. libcryptsetup sets it only with an internal hash or a journal
/// MAC, which LUKS2 with AEAD has neither of.
pub const SB_FLAG_FIXED_HMAC: u32 = 1 << 4;

/// Size of the part of the superblock we parse (the kernel reserves one 512-byte sector).
pub const SUPERBLOCK_READ: usize = 512;

/// The fields of `struct superblock` (`drivers/md/dm-integrity.c`) that activation uses.
/// All multi-byte fields are little-endian on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegritySuperblock {
    /// `version` (byte 8).
    pub version: u8,
    /// `log2_interleave_sectors` (byte 9).
    pub log2_interleave_sectors: u8,
    /// `integrity_tag_size` (bytes 10..12).
    pub tag_size: u16,
    /// `journal_sections` (bytes 12..16).
    pub journal_sections: u32,
    /// `provided_data_sectors` (bytes 16..24): the usable size in 512-byte sectors.
    pub provided_data_sectors: u64,
    /// `flags` (bytes 24..28).
    pub flags: u32,
    /// `log2_sectors_per_block` (byte 28).
    pub log2_sectors_per_block: u8,
}

/// Why the integrity superblock was refused.
///
/// The disk is untrusted (in confidential computing the host controls it), so every field that
/// sizes a table or an offset is checked, and each refusal says which one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuperblockError {
    /// Reading it failed.
    #[error("read {} at byte {offset}", device.display())]
    Read {
        /// The device.
        device: PathBuf,
        /// Byte offset of the superblock.
        offset: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Fewer bytes than the fields we parse.
    #[error("invalid dm-integrity superblock: only {len} bytes")]
    Short {
        /// Bytes given.
        len: usize,
    },
    /// The magic is not `integrt\0`.
    #[error("invalid dm-integrity superblock: magic is not \"integrt\"")]
    Magic,
    /// A version this code does not know.
    #[error("invalid dm-integrity superblock: unknown version {version}")]
    Version {
        /// The version byte.
        version: u8,
    },
    /// A tag size of zero.
    #[error("invalid dm-integrity superblock: tag size 0")]
    NoTags,
    /// No data sectors at all.
    #[error("invalid dm-integrity superblock: provided_data_sectors is 0")]
    NoData,
    /// A block size above 4096 bytes.
    #[error("invalid dm-integrity superblock: block size 512 << {log2}")]
    BlockSize {
        /// `log2_sectors_per_block`.
        log2: u8,
    },
    /// An interleave other than the one a LUKS2 format writes (2^15 sectors, the kernel's
    /// default). A host-chosen small one would make the byte accounting allocate one entry per
    /// 4 KiB block (about 128 MiB per TiB).
    #[error("invalid dm-integrity superblock: interleave of 2^{log2} sectors, a LUKS2 format writes 2^{}", LUKS2_LOG2_INTERLEAVE_SECTORS)]
    Interleave {
        /// `log2_interleave_sectors`.
        log2: u8,
    },
    /// Flags a LUKS2 format never sets (journal MAC, recalculating).
    #[error("invalid dm-integrity superblock: flags {flags:#x} not produced by a LUKS2 format")]
    Flags {
        /// The flags field.
        flags: u32,
    },
    /// The data it provides does not fit on the device.
    #[error("invalid dm-integrity superblock: {data_sectors} data sectors from sector {offset_sectors} exceed the {device_bytes}-byte device")]
    BeyondDevice {
        /// `provided_data_sectors`.
        data_sectors: u64,
        /// Where the superblock (the data segment) starts.
        offset_sectors: u64,
        /// Size of the device.
        device_bytes: u64,
    },
}

impl SuperblockError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            SuperblockError::Read { source, .. } => class_of_io(source),
            _ => ErrorClass::Io,
        }
    }
}

/// `log2_interleave_sectors` of every LUKS2 format: libcryptsetup leaves it to dm-integrity's
/// default of 32768 sectors (`DEFAULT_INTERLEAVE_SECTORS`, `drivers/md/dm-integrity.c`).
pub const LUKS2_LOG2_INTERLEAVE_SECTORS: u8 = 15;

/// Parse and validate a superblock from its first bytes.
pub fn parse_integrity_superblock(buf: &[u8]) -> Result<IntegritySuperblock, SuperblockError> {
    if buf.len() < 29 {
        return Err(SuperblockError::Short { len: buf.len() });
    }
    if &buf[..8] != INTEGRITY_MAGIC {
        return Err(SuperblockError::Magic);
    }
    let le16 = |o: usize| u16::from_le_bytes([buf[o], buf[o + 1]]);
    let le32 = |o: usize| u32::from_le_bytes([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]);
    let le64 = |o: usize| u64::from(le32(o)) | (u64::from(le32(o + 4)) << 32);
    let sb = IntegritySuperblock {
        version: buf[8],
        log2_interleave_sectors: buf[9],
        tag_size: le16(10),
        journal_sections: le32(12),
        provided_data_sectors: le64(16),
        flags: le32(24),
        log2_sectors_per_block: buf[28],
    };
    if sb.version == 0 || sb.version > INTEGRITY_MAX_VERSION {
        return Err(SuperblockError::Version {
            version: sb.version,
        });
    }
    if sb.tag_size == 0 {
        return Err(SuperblockError::NoTags);
    }
    if sb.provided_data_sectors == 0 {
        return Err(SuperblockError::NoData);
    }
    if sb.log2_sectors_per_block > 3 {
        return Err(SuperblockError::BlockSize {
            log2: sb.log2_sectors_per_block,
        });
    }
    if sb.log2_interleave_sectors != LUKS2_LOG2_INTERLEAVE_SECTORS {
        return Err(SuperblockError::Interleave {
            log2: sb.log2_interleave_sectors,
        });
    }
    if sb.flags & (SB_FLAG_HAVE_JOURNAL_MAC | SB_FLAG_RECALCULATING) != 0 {
        return Err(SuperblockError::Flags { flags: sb.flags });
    }
    Ok(sb)
}

impl IntegritySuperblock {
    /// Size in bytes of the integrity journal this superblock describes, computed as
    /// `drivers/md/dm-integrity.c` lays it out: a journal entry holds the sector number (8
    /// bytes), one 8-byte commit id per 512-byte sector of the block and the tag, rounded up to
    /// 8 bytes; a 512-byte journal sector carries 504 bytes of entries; a section is 8 such
    /// sectors of entries plus their data blocks.
    pub fn journal_bytes(&self) -> u64 {
        const JOURNAL_BLOCK_SECTORS: u64 = 8;
        const JOURNAL_SECTOR_DATA: u64 = 512 - 8;
        let sectors_per_block = 1u64 << self.log2_sectors_per_block.min(16);
        let entry = (8 + 8 * sectors_per_block + u64::from(self.tag_size)).div_ceil(8) * 8;
        let section_entries = JOURNAL_SECTOR_DATA / entry * JOURNAL_BLOCK_SECTORS;
        let section_sectors = section_entries * sectors_per_block + JOURNAL_BLOCK_SECTORS;
        u64::from(self.journal_sections) * section_sectors * 512
    }

    /// The superblock's first 512 bytes as the kernel lays them out (for mocks and tests that
    /// need a formatted-looking device without a kernel).
    #[cfg(any(test, feature = "test-support"))]
    pub fn encode(&self) -> [u8; SUPERBLOCK_READ] {
        let mut b = [0u8; SUPERBLOCK_READ];
        b[..8].copy_from_slice(INTEGRITY_MAGIC);
        b[8] = self.version;
        b[9] = self.log2_interleave_sectors;
        b[10..12].copy_from_slice(&self.tag_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.journal_sections.to_le_bytes());
        b[16..24].copy_from_slice(&self.provided_data_sectors.to_le_bytes());
        b[24..28].copy_from_slice(&self.flags.to_le_bytes());
        b[28] = self.log2_sectors_per_block;
        b
    }
}

/// Read the superblock at `data_offset_sectors` of `device` and check that the data it
/// provides fits on the device.
pub fn read_integrity_superblock(
    device: &Path,
    data_offset_sectors: u64,
) -> Result<IntegritySuperblock, SuperblockError> {
    let offset = data_offset_sectors.saturating_mul(512);
    let read_err = |source| SuperblockError::Read {
        device: device.to_path_buf(),
        offset,
        source,
    };
    let mut file = File::open(device).map_err(read_err)?;
    // SEEK_END gives the size of a block device as well as of a regular file.
    let size = file.seek(SeekFrom::End(0)).map_err(read_err)?;
    let mut buf = [0u8; SUPERBLOCK_READ];
    file.read_exact_at(&mut buf, offset).map_err(read_err)?;
    let sb = parse_integrity_superblock(&buf)?;
    let end = sb
        .provided_data_sectors
        .checked_add(data_offset_sectors)
        .and_then(|s| s.checked_mul(512));
    match end {
        Some(end) if end <= size => Ok(sb),
        _ => Err(SuperblockError::BeyondDevice {
            data_sectors: sb.provided_data_sectors,
            offset_sectors: data_offset_sectors,
            device_bytes: size,
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A superblock as the kernel writes it: version 5, tag 32, 4 KiB blocks, the given size.
    pub(crate) fn superblock_bytes(provided: u64) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[..8].copy_from_slice(INTEGRITY_MAGIC);
        b[8] = 5;
        b[9] = 15;
        b[10..12].copy_from_slice(&32u16.to_le_bytes());
        b[12..16].copy_from_slice(&22u32.to_le_bytes());
        b[16..24].copy_from_slice(&provided.to_le_bytes());
        b[24..28].copy_from_slice(&(1u32 << 3).to_le_bytes());
        b[28] = 3;
        b
    }

    /// All fields are read at the kernel's offsets and in little-endian order.
    #[test]
    fn superblock_fields_are_parsed() {
        let sb = parse_integrity_superblock(&superblock_bytes(2_031_880)).unwrap();
        assert_eq!(
            sb,
            IntegritySuperblock {
                version: 5,
                log2_interleave_sectors: 15,
                tag_size: 32,
                journal_sections: 22,
                provided_data_sectors: 2_031_880,
                flags: 8,
                log2_sectors_per_block: 3,
            }
        );
    }

    /// Encoding and parsing are inverse, and encode matches the hand-made kernel layout.
    #[test]
    fn superblock_encoding_round_trips() {
        let bytes = superblock_bytes(777);
        let sb = parse_integrity_superblock(&bytes).unwrap();
        assert_eq!(sb.encode().as_slice(), bytes.as_slice());
    }

    /// Bad magic, version, sizes and flags are each refused with a reason.
    #[test]
    fn invalid_superblocks_are_refused() {
        type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|b| b[0] = b'X'), "magic"),
            (Box::new(|b| b[8] = 0), "version"),
            (Box::new(|b| b[8] = 99), "version"),
            (Box::new(|b| b[10] = 0), "tag size"),
            (Box::new(|b| b[16..24].fill(0)), "provided_data_sectors"),
            (Box::new(|b| b[28] = 4), "block size"),
            (Box::new(|b| b[24] = 1), "flags"),
            // Issue 26 item 10: a host-chosen interleave (3 = one 4 KiB block per area).
            (Box::new(|b| b[9] = 3), "interleave"),
            (Box::new(|b| b[9] = 31), "interleave"),
            (Box::new(|b| b.truncate(20)), "bytes"),
        ];
        for (mutate, word) in cases {
            let mut b = superblock_bytes(1000);
            mutate(&mut b);
            let e = parse_integrity_superblock(&b).unwrap_err();
            assert!(e.to_string().contains(word), "{e} should mention {word}");
        }
    }

    /// The superblock is read at the data offset, and a size beyond the device is refused.
    #[test]
    fn superblock_is_read_at_the_data_offset_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        let f = File::create(&path).unwrap();
        f.set_len(32 * 512 + 100 * 512).unwrap();
        f.write_all_at(&superblock_bytes(100), 32 * 512).unwrap();
        let sb = read_integrity_superblock(&path, 32).unwrap();
        assert_eq!(sb.provided_data_sectors, 100);
        f.write_all_at(&superblock_bytes(101), 32 * 512).unwrap();
        let e = read_integrity_superblock(&path, 32).unwrap_err();
        assert!(e.to_string().contains("exceed"), "{e}");
        let e = read_integrity_superblock(&dir.path().join("nope"), 32).unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
    }
}
