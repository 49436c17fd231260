//! Pure construction of the two device-mapper tables, and the dm-integrity superblock.
//!
//! # Why pure functions
//! The tables must equal what libcryptsetup 2.6 loads for the same header, or `cryptsetup
//! status`, `close` and a later `cryptsetup open` would disagree with us. Building them as pure
//! functions of ([`LuksParams`], integrity superblock, device references, key reference) lets the
//! unit tests pin every string without a kernel.
//!
//! # The stack
//! - `<name>_dif`: `0 <provided_data_sectors> integrity <source> <data_offset> <tag_size> D 3
//!   block_size:<sector_size> fix_padding fix_hmac`. `D` is direct-write mode (no journal),
//!   which the header's persistent `no-journal` flag asks for. The size is the
//!   `provided_data_sectors` the kernel wrote into the superblock at format time
//!   (`drivers/md/dm-integrity.c`, `struct superblock`), as libcryptsetup's
//!   `INTEGRITY_data_sectors` reads it.
//! - `<name>`: `0 <same> crypt capi:authenc(<integrity>,<mode>(<cipher>))-<iv> <key> 0
//!   <_dif device> 0 2 sector_size:<sector_size> integrity:<tag_size>:aead`. The key is
//!   `:<size>:logon:<description>` for a key in the kernel keyring (the default, as cryptsetup
//!   does it), or hex as a fallback.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{class_of_io, ErrorClass};
use crate::luks::{LuksParams, VolumeKey};

/// The error type of device-mapper activation, kept under this path for `crate::error`.
pub use crate::dm::DmError;

/// Magic at the start of a dm-integrity superblock (`SB_MAGIC`, `drivers/md/dm-integrity.c`).
pub const INTEGRITY_MAGIC: &[u8; 8] = b"integrt\0";

/// Highest superblock version this code knows (`SB_VERSION_5` in Linux 6.1).
pub const INTEGRITY_MAX_VERSION: u8 = 6;

/// `SB_FLAG_HAVE_JOURNAL_MAC`: a journal MAC, which LUKS2 never configures.
const SB_FLAG_HAVE_JOURNAL_MAC: u32 = 1 << 0;

/// `SB_FLAG_RECALCULATING`: tags are being recomputed; not something a fresh format has.
const SB_FLAG_RECALCULATING: u32 = 1 << 1;

/// Size of the part of the superblock we parse (the kernel reserves one 512-byte sector).
const SUPERBLOCK_READ: usize = 512;

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
    /// It is not a valid superblock for our format.
    #[error("invalid dm-integrity superblock: {0}")]
    Invalid(String),
}

impl SuperblockError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            SuperblockError::Read { source, .. } => class_of_io(source),
            SuperblockError::Invalid(_) => ErrorClass::Io,
        }
    }
}

/// Parse and validate a superblock from its first bytes.
pub fn parse_integrity_superblock(buf: &[u8]) -> Result<IntegritySuperblock, SuperblockError> {
    let bad = |s: String| Err(SuperblockError::Invalid(s));
    if buf.len() < 29 {
        return bad(format!("only {} bytes", buf.len()));
    }
    if &buf[..8] != INTEGRITY_MAGIC {
        return bad("magic is not \"integrt\"".to_owned());
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
        return bad(format!("unknown version {}", sb.version));
    }
    if sb.tag_size == 0 {
        return bad("tag size 0".to_owned());
    }
    if sb.provided_data_sectors == 0 {
        return bad("provided_data_sectors is 0".to_owned());
    }
    if sb.log2_sectors_per_block > 3 {
        return bad(format!("block size 512 << {}", sb.log2_sectors_per_block));
    }
    if sb.flags & (SB_FLAG_HAVE_JOURNAL_MAC | SB_FLAG_RECALCULATING) != 0 {
        return bad(format!(
            "flags {:#x} not produced by a LUKS2 format",
            sb.flags
        ));
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
    let file = File::open(device).map_err(read_err)?;
    let size = match crate::blockdev::kind(&file).map_err(read_err)? {
        crate::blockdev::Kind::Block => crate::blockdev::size_bytes(&file).map_err(read_err)?,
        _ => file.metadata().map_err(read_err)?.len(),
    };
    let mut buf = [0u8; SUPERBLOCK_READ];
    file.read_exact_at(&mut buf, offset).map_err(read_err)?;
    let sb = parse_integrity_superblock(&buf)?;
    let end = sb
        .provided_data_sectors
        .checked_add(data_offset_sectors)
        .and_then(|s| s.checked_mul(512));
    match end {
        Some(end) if end <= size => Ok(sb),
        _ => Err(SuperblockError::Invalid(format!(
            "{} data sectors from sector {data_offset_sectors} exceed the {size}-byte device",
            sb.provided_data_sectors
        ))),
    }
}

/// One table line (a single target from sector 0). Debug never shows the parameters of a
/// table that carries a key.
#[derive(Clone, PartialEq, Eq)]
pub struct TableLine {
    /// Length in 512-byte sectors.
    pub length: u64,
    /// Target type, `integrity` or `crypt`.
    pub target: &'static str,
    /// Target parameters.
    pub params: Zeroizing<String>,
    /// Whether `params` holds key material (load with `DM_SECURE_DATA`, never print).
    pub secret: bool,
}

impl fmt::Debug for TableLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: &str = if self.secret {
            "[redacted]"
        } else {
            &self.params
        };
        write!(f, "TableLine(0 {} {} {params})", self.length, self.target)
    }
}

/// How the crypt table names its key.
pub enum KeyRef<'a> {
    /// A `logon` key in the kernel keyring with this description.
    Keyring {
        /// The key's description, `cryptsetup:<uuid>-d0`.
        description: &'a str,
        /// The key's size in bytes.
        size: usize,
    },
    /// The key itself, hex-encoded into the table.
    Hex(&'a VolumeKey),
}

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("build the {target} table: {reason}")]
pub struct TableError {
    /// Which table.
    pub target: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// dm UUID of the crypt device, in cryptsetup 2.6's format (`lib/utils_devpath.c`,
/// `dm_prepare_uuid`: type, UUID without dashes, name).
pub fn crypt_dm_uuid(uuid: &str, name: &str) -> String {
    format!("CRYPT-LUKS2-{}-{name}", uuid.replace('-', ""))
}

/// dm UUID of the integrity device under it.
pub fn integrity_dm_uuid(uuid: &str, dif_name: &str) -> String {
    format!("CRYPT-INTEGRITY-{}-{dif_name}", uuid.replace('-', ""))
}

/// Keyring description cryptsetup uses for the volume key of segment 0 (`lib/luks2`,
/// `LUKS2_key_description_by_segment`).
pub fn keyring_description(uuid: &str) -> String {
    format!("cryptsetup:{uuid}-d0")
}

/// Kernel crypto API spec for the crypt target, as libcryptsetup derives it from cipher, mode
/// and integrity (`lib/utils_crypt.c`): `aes` + `xts-plain64` + `hmac(sha256)` gives
/// `capi:authenc(hmac(sha256),xts(aes))-plain64`.
pub fn capi_cipher_spec(params: &LuksParams) -> Result<String, TableError> {
    let (mode, iv) = params
        .cipher_mode
        .split_once('-')
        .ok_or_else(|| TableError {
            target: "crypt",
            reason: format!("cipher mode {:?} has no IV generator", params.cipher_mode),
        })?;
    if !params.integrity.starts_with("hmac(") {
        return Err(TableError {
            target: "crypt",
            reason: format!(
                "integrity {:?} is not an HMAC (only authenc AEAD is built here)",
                params.integrity
            ),
        });
    }
    Ok(format!(
        "capi:authenc({},{mode}({}))-{iv}",
        params.integrity, params.cipher
    ))
}

/// The dm-integrity table for `<name>_dif`, over `source` (a `major:minor` or a path).
pub fn integrity_table(
    source: &str,
    params: &LuksParams,
    sb: &IntegritySuperblock,
) -> Result<TableLine, TableError> {
    check_ref("integrity", source)?;
    if u32::from(sb.tag_size) != params.tag_size {
        return Err(TableError {
            target: "integrity",
            reason: format!(
                "superblock tag size {} differs from the header's {}",
                sb.tag_size, params.tag_size
            ),
        });
    }
    if 512u32 << sb.log2_sectors_per_block != params.sector_size {
        return Err(TableError {
            target: "integrity",
            reason: format!(
                "superblock block size {} differs from the header's sector size {}",
                512u32 << sb.log2_sectors_per_block,
                params.sector_size
            ),
        });
    }
    Ok(TableLine {
        length: sb.provided_data_sectors,
        target: "integrity",
        params: Zeroizing::new(format!(
            "{source} {} {} D 3 block_size:{} fix_padding fix_hmac",
            params.data_offset_sectors, params.tag_size, params.sector_size
        )),
        secret: false,
    })
}

/// The dm-crypt table for `<name>`, over the integrity device `dif` (a `major:minor`).
pub fn crypt_table(
    dif: &str,
    params: &LuksParams,
    sb: &IntegritySuperblock,
    key: &KeyRef<'_>,
) -> Result<TableLine, TableError> {
    check_ref("crypt", dif)?;
    let spec = capi_cipher_spec(params)?;
    let mut line = Zeroizing::new(String::with_capacity(512));
    line.push_str(&spec);
    line.push(' ');
    match key {
        KeyRef::Keyring { description, size } => {
            if description.contains(char::is_whitespace) {
                return Err(TableError {
                    target: "crypt",
                    reason: "keyring description contains whitespace".to_owned(),
                });
            }
            line.push_str(&format!(":{size}:logon:{description}"));
        }
        KeyRef::Hex(k) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for b in k.expose() {
                line.push(char::from(HEX[usize::from(b >> 4)]));
                line.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    line.push_str(&format!(
        " 0 {dif} 0 2 sector_size:{} integrity:{}:aead",
        params.sector_size, params.tag_size
    ));
    Ok(TableLine {
        length: sb.provided_data_sectors,
        target: "crypt",
        params: line,
        secret: matches!(key, KeyRef::Hex(_)),
    })
}

/// A device reference goes into a space-separated table: refuse empty ones and whitespace.
fn check_ref(target: &'static str, dev: &str) -> Result<(), TableError> {
    if dev.is_empty() || dev.contains(char::is_whitespace) {
        return Err(TableError {
            target,
            reason: format!("device reference {dev:?} is empty or contains whitespace"),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "dm_table_tests.rs"]
mod tests;
