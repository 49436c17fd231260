//! The LUKS2 header: formatted through libcryptsetup, behind the [`LuksFormatter`] seam.
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

use std::path::{Path, PathBuf};

use crate::class::{class_of_io, ErrorClass};
use crate::key::VolumeKey;
use crate::params::{LuksParams, MIN_DEVICE_BYTES};
use crate::superblock::SuperblockError;

mod libcryptsetup;
#[cfg(any(test, feature = "test-support"))]
mod mock;
// The LUKS2 format call with dm-integrity journal parameters, and the byte accounting of
// format and tags (issue #12).
mod accounting;
mod raw_format;

pub use self::accounting::{format_write_bytes, TagLayout};
#[cfg(any(test, feature = "test-support"))]
pub use self::libcryptsetup::last_library_errors;
pub use self::libcryptsetup::Libcryptsetup;
#[cfg(any(test, feature = "test-support"))]
pub use self::libcryptsetup::JOURNAL_BYTES;
#[cfg(any(test, feature = "test-support"))]
pub use self::mock::{MockFormatter, MOCK_DATA_OFFSET_SECTORS};
#[cfg(any(test, feature = "test-support"))]
pub use self::raw_format::journal_section_bytes;

/// The seam between the pipeline and libcryptsetup, so the pipeline can be tested with a mock.
pub trait LuksFormatter {
    /// Write a LUKS2 + integrity header for `key` on `device` and return what activation needs.
    fn format(&self, device: &Path, key: &VolumeKey) -> Result<LuksParams, LuksError>;
}

/// Errors of the LUKS2 step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LuksError {
    /// The key given does not have the length the format needs.
    #[error("format {}: volume key must be {} bytes, got {len}", device.display(), crate::key::VOLUME_KEY_BYTES)]
    KeySize {
        /// The device.
        device: PathBuf,
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
            LuksError::NoDeviceMapper { .. } | LuksError::MissingTarget { .. } => {
                ErrorClass::Unsupported
            }
            LuksError::Open { source, .. } => class_of_io(source),
            LuksError::NotBlockDevice { .. } | LuksError::KeySize { .. } => {
                ErrorClass::InvalidInput
            }
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

/// How a header read back from the disk differs from what [`Libcryptsetup::format`] asked
/// for, if it does: cipher, mode, integrity algorithm, sector size, key and tag size, and a
/// data offset inside the metadata area we sized. A disk the host controls may return anything
/// between our write and our read; the tables built from these values must be ours.
pub fn differs_from_request(params: &LuksParams) -> Option<String> {
    use crate::params::{CIPHER, INTEGRITY, SECTOR_SIZE};
    /// Two header copies of 16 KiB and the 4 KiB keyslots area, in sectors; libcryptsetup
    /// aligns the data segment up to at most 1 MiB beyond that (sectors).
    const MIN_OFFSET: u64 = (2 * 16384 + 4096) / 512;
    const MAX_OFFSET: u64 = MIN_OFFSET + 2048;
    let text = |field: &str, want: &dyn std::fmt::Display, got: &dyn std::fmt::Display| {
        Some(format!("{field} is {got}, not the {want} that was written"))
    };
    if params.cipher != CIPHER.0 {
        return text(
            "the cipher",
            &format!("{:?}", CIPHER.0),
            &format!("{:?}", params.cipher),
        );
    }
    if params.cipher_mode != CIPHER.1 {
        let got = format!("{:?}", params.cipher_mode);
        return text("the cipher mode", &format!("{:?}", CIPHER.1), &got);
    }
    if params.integrity != INTEGRITY {
        let got = format!("{:?}", params.integrity);
        return text("the integrity algorithm", &format!("{INTEGRITY:?}"), &got);
    }
    if params.sector_size != SECTOR_SIZE {
        return text("the sector size", &SECTOR_SIZE, &params.sector_size);
    }
    if params.key_size != crate::key::VOLUME_KEY_BYTES {
        return text(
            "the volume key size",
            &crate::key::VOLUME_KEY_BYTES,
            &params.key_size,
        );
    }
    if params.tag_size != libcryptsetup::TAG_SIZE {
        return text(
            "the integrity tag size",
            &libcryptsetup::TAG_SIZE,
            &params.tag_size,
        );
    }
    if !(MIN_OFFSET..=MAX_OFFSET).contains(&params.data_offset_sectors) {
        return Some(format!(
            "the data offset is sector {}, outside the {MIN_OFFSET}..={MAX_OFFSET} of the \
             metadata area that was written",
            params.data_offset_sectors
        ));
    }
    None
}

#[cfg(test)]
mod tests;
