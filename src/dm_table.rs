//! Pure construction of the two device-mapper tables.
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

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::key::VolumeKey;
use crate::params::LuksParams;
use crate::superblock::IntegritySuperblock;

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

/// Why a table could not be built from the header and superblock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The cipher mode has no `-<iv>` part.
    #[error("build the crypt table: cipher mode {mode:?} has no IV generator")]
    NoIvGenerator {
        /// The cipher mode read from the header.
        mode: String,
    },
    /// The integrity algorithm is not an HMAC.
    #[error("build the crypt table: integrity {integrity:?} is not an HMAC (only authenc AEAD is built here)")]
    NotHmac {
        /// The integrity algorithm read from the header.
        integrity: String,
    },
    /// Superblock and header disagree on the tag size.
    #[error("build the integrity table: superblock tag size {superblock} differs from the header's {header}")]
    TagSize {
        /// From the integrity superblock.
        superblock: u32,
        /// From the LUKS2 header.
        header: u32,
    },
    /// Superblock and header disagree on the sector size.
    #[error("build the integrity table: superblock block size {superblock} differs from the header's sector size {header}")]
    BlockSize {
        /// From the integrity superblock.
        superblock: u32,
        /// From the LUKS2 header.
        header: u32,
    },
    /// The keyring description would break the table line.
    #[error("build the crypt table: keyring description contains whitespace")]
    KeyDescription,
    /// A device reference would break the table line.
    #[error("build the {target} table: device reference {dev:?} is empty or contains whitespace")]
    DeviceRef {
        /// Which table.
        target: &'static str,
        /// The reference given.
        dev: String,
    },
}

/// dm UUID of the crypt device, in cryptsetup 2.6's format (`lib/utils_devpath.c`,
/// `dm_prepare_uuid`: type, UUID without dashes, name).
pub fn crypt_dm_uuid(uuid: &Uuid, name: &str) -> String {
    format!("CRYPT-LUKS2-{}-{name}", uuid.simple())
}

/// dm UUID of the integrity device under it.
pub fn integrity_dm_uuid(uuid: &Uuid, dif_name: &str) -> String {
    format!("CRYPT-INTEGRITY-{}-{dif_name}", uuid.simple())
}

/// Keyring description cryptsetup uses for the volume key of segment 0 (`lib/luks2`,
/// `LUKS2_key_description_by_segment`).
pub fn keyring_description(uuid: &Uuid) -> String {
    format!("cryptsetup:{}-d0", uuid.hyphenated())
}

/// Kernel crypto API spec for the crypt target, as libcryptsetup derives it from cipher, mode
/// and integrity (`lib/utils_crypt.c`): `aes` + `xts-plain64` + `hmac(sha256)` gives
/// `capi:authenc(hmac(sha256),xts(aes))-plain64`.
pub fn capi_cipher_spec(params: &LuksParams) -> Result<String, TableError> {
    let (mode, iv) =
        params
            .cipher_mode
            .split_once('-')
            .ok_or_else(|| TableError::NoIvGenerator {
                mode: params.cipher_mode.clone(),
            })?;
    if !params.integrity.starts_with("hmac(") {
        return Err(TableError::NotHmac {
            integrity: params.integrity.clone(),
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
        return Err(TableError::TagSize {
            superblock: u32::from(sb.tag_size),
            header: params.tag_size,
        });
    }
    if 512u32 << sb.log2_sectors_per_block != params.sector_size {
        return Err(TableError::BlockSize {
            superblock: 512u32 << sb.log2_sectors_per_block,
            header: params.sector_size,
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
                return Err(TableError::KeyDescription);
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
        return Err(TableError::DeviceRef {
            target,
            dev: dev.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
