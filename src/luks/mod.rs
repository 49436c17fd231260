//! The volume key and the LUKS2 header.
//!
//! # Why it looks like this
//! The scratch disk's key lives only in memory and dies with the mapping, so nobody ever needs
//! to unlock the volume with a passphrase: the header gets **no keyslot** and no PBKDF ever runs
//! on a passphrase. The header still matters: it records cipher, integrity algorithm, sector
//! size, data offset and a digest of the volume key, which is what `cryptsetup open
//! --volume-key-file` checks, and what `cryptsetup status` / `close` recognise.
//!
//! # The flow of [`Libcryptsetup::format`]
//! 1. A PBKDF2 type with `CRYPT_PBKDF_NO_BENCHMARK` is set, so the key digest uses the minimum
//!    1000 iterations instead of benchmarking for 125 ms (`lib/luks2/luks2_digest_pbkdf2.c`).
//! 2. The metadata area is shrunk to the smallest sizes libcryptsetup accepts (16 KiB JSON
//!    area, one 4 KiB keyslot block): `crypt_format` wipes the whole keyslot area, 16 MiB by
//!    default, twice (zeros, then random bytes). See `vendor-notes.md` for the measurement.
//! 3. `crypt_format` writes LUKS2 with `aes-xts-plain64`, `hmac(sha256)` and 4096-byte
//!    sectors. It does not wipe the data area (that is a cryptsetup CLI step); it has the kernel
//!    write the dm-integrity superblock and journal through a short-lived dm-integrity device.
//!    The journal is one section (132 KiB), not the kernel's default of up to 64 MiB: this one
//!    call goes through `libcryptsetup-rs-sys` (`raw_format.rs`) to pass the journal size.
//! 4. The persistent `no-journal` activation flag is stored in the header.
//! 5. What activation needs is read back from the header and the integrity superblock into
//!    [`LuksParams`], never taken from our own constants.

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::dm_table::SuperblockError;
use crate::error::{class_of_io, ErrorClass};

mod libcryptsetup;
mod mock;
// The LUKS2 format call with dm-integrity journal parameters, and the byte accounting of
// format and tags (issue #12).
mod accounting;
mod raw_format;

pub use self::accounting::{format_write_bytes, TagLayout};
pub use self::libcryptsetup::{last_library_errors, Libcryptsetup, JOURNAL_BYTES};
pub use self::mock::{MockFormatter, MOCK_DATA_OFFSET_SECTORS};
pub use self::raw_format::journal_section_bytes;

/// Length of the volume key: a 64-byte AES-256-XTS key followed by a 32-byte HMAC-SHA256 key
/// (dm-crypt splits an `authenc` key as cipher key then MAC key, `drivers/md/dm-crypt.c`).
pub const VOLUME_KEY_BYTES: usize = 96;

/// Encryption sector size in bytes (the Go original used `--sector-size 4096`).
pub const SECTOR_SIZE: u32 = 4096;

/// Cipher and mode given to libcryptsetup.
pub const CIPHER: (&str, &str) = ("aes", "xts-plain64");

/// Integrity algorithm given to libcryptsetup (AEAD through `authenc`).
pub const INTEGRITY: &str = "hmac(sha256)";

/// Smallest usable data area: 2048 blocks of 4 KiB, below which mke2fs gives ext4 no journal
/// (`ext2fs_default_journal_size` returns -1 under 2048 blocks, `lib/ext2fs/mkjournal.c`).
pub const MIN_DATA_BYTES: u64 = 2048 * 4096;

/// Smallest device accepted: the 1 MiB header area our minimal metadata gives (data offset
/// aligned to 1 MiB), the data area, and dm-integrity's superblock, journal (one 132 KiB
/// section; the kernel's default would be 1/128 of the device) and tags (32 bytes per 4 KiB sector, i.e. 1/128 of the data), rounded up to 10 MiB.
pub const MIN_DEVICE_BYTES: u64 = 10 << 20;

/// The volume key. It lives in a zeroizing buffer and never prints.
pub struct VolumeKey(Zeroizing<Vec<u8>>);

impl VolumeKey {
    /// Draw a fresh key from the operating system's CSPRNG (getrandom(2)).
    pub fn generate() -> Result<VolumeKey, LuksError> {
        use rand::TryRngCore;
        let mut key = Zeroizing::new(vec![0u8; VOLUME_KEY_BYTES]);
        rand::rngs::OsRng
            .try_fill_bytes(&mut key)
            .map_err(|e| LuksError::Random {
                source: std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        Ok(VolumeKey(key))
    }

    /// A key from given bytes (tests, and re-opening with an exported key in the VM tests).
    pub fn from_bytes(bytes: &[u8]) -> Result<VolumeKey, LuksError> {
        if bytes.len() != VOLUME_KEY_BYTES {
            return Err(LuksError::KeyLength { len: bytes.len() });
        }
        Ok(VolumeKey(Zeroizing::new(bytes.to_vec())))
    }

    /// The key bytes. Callers must keep copies in zeroizing buffers.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a key is never empty (present for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for VolumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VolumeKey([redacted; {} bytes])", self.0.len())
    }
}

/// What activation needs to know about a formatted header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuksParams {
    /// The header UUID, lowercase with dashes.
    pub uuid: String,
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

/// The seam between the pipeline and libcryptsetup, so the pipeline can be tested with a mock.
pub trait LuksFormatter {
    /// Write a LUKS2 + integrity header for `key` on `device` and return what activation needs.
    fn format(&self, device: &Path, key: &VolumeKey) -> Result<LuksParams, LuksError>;
}

/// Errors of the LUKS2 step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LuksError {
    /// The operating system's random generator failed.
    #[error("draw the volume key from the OS random generator")]
    Random {
        /// The getrandom error.
        #[source]
        source: std::io::Error,
    },
    /// A key of the wrong length was given.
    #[error("volume key must be 96 bytes, got {len}")]
    KeyLength {
        /// The length given.
        len: usize,
    },
    /// A libcryptsetup call failed.
    #[error("{step} on {}{said}", device.display())]
    Libcryptsetup {
        /// What we were doing.
        step: &'static str,
        /// The device.
        device: PathBuf,
        /// libcryptsetup's own error messages, if it logged any (may be empty).
        said: String,
        /// The library's error (an errno for most calls).
        #[source]
        source: libcryptsetup_rs::LibcryptErr,
    },
    /// The device cannot be inspected (missing path, permissions).
    #[error("open {} for formatting", device.display())]
    Open {
        /// The device.
        device: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Someone holds the device: mounted, part of a mapping, or opened exclusively.
    #[error("{} is in use (mounted, mapped or held open exclusively); it was not touched", device.display())]
    InUse {
        /// The device.
        device: PathBuf,
    },
    /// The device cannot hold header, integrity metadata and a minimal ext4.
    #[error("{} is too small: {size} bytes, at least {} needed for the header, the integrity metadata and a minimal ext4 with a journal; it was not touched", device.display(), MIN_DEVICE_BYTES)]
    TooSmall {
        /// The device.
        device: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// The path is not a block device.
    #[error("{} is not a block device", device.display())]
    NotBlockDevice {
        /// The path.
        device: PathBuf,
    },
    /// The kernel has no device-mapper, which formatting with integrity needs.
    #[error("format {}: this kernel has no device-mapper (no device-mapper entry in /proc/misc), which LUKS2 with dm-integrity needs; the device was not touched", device.display())]
    NoDeviceMapper {
        /// The device.
        device: PathBuf,
    },
    /// The kernel lacks a device-mapper target the format needs.
    #[error("format {}: this kernel has no dm-{target} target (is the dm-{target} module available?)", device.display())]
    MissingTarget {
        /// The device.
        device: PathBuf,
        /// The target type, `integrity`.
        target: &'static str,
    },
    /// The header read back is not what was written.
    #[error("unexpected LUKS2 header on {}: {what}", device.display())]
    UnexpectedHeader {
        /// The device.
        device: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The integrity superblock could not be read or is invalid.
    #[error("read the dm-integrity superblock of {}", device.display())]
    Superblock {
        /// The device.
        device: PathBuf,
        /// Why.
        #[source]
        source: SuperblockError,
    },
}

impl LuksError {
    /// The class of this error (for exit statuses).
    pub fn class(&self) -> ErrorClass {
        match self {
            LuksError::Random { .. } => ErrorClass::Io,
            LuksError::KeyLength { .. } => ErrorClass::InvalidInput,
            LuksError::NoDeviceMapper { .. } | LuksError::MissingTarget { .. } => {
                ErrorClass::Unsupported
            }
            LuksError::Open { source, .. } => class_of_io(source),
            LuksError::NotBlockDevice { .. } => ErrorClass::InvalidInput,
            LuksError::InUse { .. } => ErrorClass::Busy,
            LuksError::TooSmall { .. } => ErrorClass::InvalidInput,
            LuksError::Libcryptsetup { source, .. } => match source {
                libcryptsetup_rs::LibcryptErr::IOError(e) => class_of_io(e),
                _ => ErrorClass::Io,
            },
            LuksError::UnexpectedHeader { .. } => ErrorClass::Io,
            LuksError::Superblock { source, .. } => source.class(),
        }
    }
}

#[cfg(test)]
mod tests;
