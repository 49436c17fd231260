//! The on-disk format scratchcrypt produces, and what activation needs to know about a header.
//!
//! # Why its own module
//! The header format ([`crate::luks`]) produces [`LuksParams`]; the table builder
//! ([`crate::dm_table`]) and activation ([`crate::dm`]) consume them. Keeping the type (and the
//! constants that fix our format) below all three lets each be changed and tested alone.

use uuid::Uuid;

/// Encryption sector size in bytes (the Go original used `--sector-size 4096`).
pub const SECTOR_SIZE: u32 = 4096;

/// The LUKS2 `subsystem` field of every header scratchcrypt writes: how the data guard
/// recognises a previous scratch disk (re-made without `--force`, as at every boot) among the
/// LUKS volumes it must not destroy. `blkid -p` shows it as `SUBSYSTEM=scratchcrypt`.
pub const LUKS2_SUBSYSTEM: &str = "scratchcrypt";

/// Cipher and mode given to libcryptsetup.
pub const CIPHER: (&str, &str) = ("aes", "xts-plain64");

/// Integrity algorithm given to libcryptsetup (AEAD through `authenc`).
pub const INTEGRITY: &str = "hmac(sha256)";

/// Smallest usable data area: 2048 blocks of 4 KiB, below which mke2fs gives ext4 no journal
/// (`ext2fs_default_journal_size` returns -1 under 2048 blocks, `lib/ext2fs/mkjournal.c`).
pub const MIN_DATA_BYTES: u64 = 2048 * 4096;

/// Smallest device accepted: the 1 MiB header area our minimal metadata gives (data offset
/// aligned to 1 MiB), the data area, and dm-integrity's superblock, journal (1/128 of the
/// device) and tags (32 bytes per 4 KiB sector, i.e. 1/128 of the data), rounded up to 10 MiB.
pub const MIN_DEVICE_BYTES: u64 = 10 << 20;

/// What activation needs to know about a formatted header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuksParams {
    /// The header UUID.
    pub uuid: Uuid,
    /// Start of the data segment (the dm-integrity superblock), in 512-byte sectors.
    pub data_offset_sectors: u64,
    /// Encryption sector size in bytes.
    pub sector_size: u32,
    /// Cipher, e.g. `aes`.
    pub cipher: String,
    /// Cipher mode with IV generator, e.g. `xts-plain64`.
    pub cipher_mode: String,
    /// Integrity algorithm, e.g. `hmac(sha256)`.
    pub integrity: String,
    /// Integrity tag size in bytes per sector (from the integrity superblock).
    pub tag_size: u32,
    /// Volume key size in bytes (cipher key plus integrity key).
    pub key_size: usize,
}
