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
//! 4. The persistent `no-journal` activation flag is stored in the header.
//! 5. What activation needs is read back from the header and the integrity superblock into
//!    [`LuksParams`], never taken from our own constants.

use std::fmt;
use std::path::{Path, PathBuf};

use libcryptsetup_rs::consts::flags::{CryptActivate, CryptPbkdf};
use libcryptsetup_rs::consts::vals::{CryptKdf, EncryptionFormat, KeyslotsSize, MetadataSize};
use libcryptsetup_rs::{CryptInit, CryptParamsLuks2, CryptParamsLuks2Ref, CryptPbkdfType, Either};
use zeroize::Zeroizing;

use crate::dm_table::{read_integrity_superblock, SuperblockError};
use crate::error::{class_of_io, ErrorClass};

/// Length of the volume key: a 64-byte AES-256-XTS key followed by a 32-byte HMAC-SHA256 key
/// (dm-crypt splits an `authenc` key as cipher key then MAC key, `drivers/md/dm-crypt.c`).
pub const VOLUME_KEY_BYTES: usize = 96;

/// Encryption sector size in bytes (the Go original used `--sector-size 4096`).
pub const SECTOR_SIZE: u32 = 4096;

/// Cipher and mode given to libcryptsetup.
pub const CIPHER: (&str, &str) = ("aes", "xts-plain64");

/// Integrity algorithm given to libcryptsetup (AEAD through `authenc`).
pub const INTEGRITY: &str = "hmac(sha256)";

/// Smallest JSON metadata area LUKS2 allows (`LUKS2_HDR_16K_LEN`, `lib/luks2/luks2.h`).
const METADATA_SIZE: MetadataSize = MetadataSize::Kb16;

/// Smallest non-zero keyslots area: one 4 KiB block (`LUKS2_check_keyslots_area_size`,
/// `lib/luks2/luks2_json_metadata.c`; zero would mean "the default", 16 MiB minus the headers).
const KEYSLOTS_SIZE: u64 = 4096;

/// Minimum PBKDF2 iterations libcryptsetup accepts (`LUKS_MKD_ITERATIONS_MIN`, `lib/luks1/luks.h`).
const PBKDF2_MIN_ITERATIONS: u32 = 1000;

/// Smallest usable data area: 2048 blocks of 4 KiB, below which mke2fs gives ext4 no journal
/// (`ext2fs_default_journal_size` returns -1 under 2048 blocks, `lib/ext2fs/mkjournal.c`).
pub const MIN_DATA_BYTES: u64 = 2048 * 4096;

/// Smallest device accepted: the 1 MiB header area our minimal metadata gives (data offset
/// aligned to 1 MiB), the data area, and dm-integrity's superblock, journal (1/128 of the
/// device) and tags (32 bytes per 4 KiB sector, i.e. 1/128 of the data), rounded up to 10 MiB.
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

/// The real formatter, over libcryptsetup.
#[derive(Debug, Default, Clone, Copy)]
pub struct Libcryptsetup;

impl LuksFormatter for Libcryptsetup {
    fn format(&self, device: &Path, key: &VolumeKey) -> Result<LuksParams, LuksError> {
        let fail = |step: &'static str| {
            move |source: libcryptsetup_rs::LibcryptErr| LuksError::Libcryptsetup {
                step,
                device: device.to_path_buf(),
                said: said(),
                source,
            }
        };
        std::fs::metadata(device).map_err(|source| LuksError::Open {
            device: device.to_path_buf(),
            source,
        })?;
        // crypt_format overwrites the first megabytes before it needs device-mapper for the
        // integrity superblock: refuse up front on a kernel without it.
        let misc = std::fs::read_to_string("/proc/misc").unwrap_or_default();
        if crate::dm::dm_misc_minor(&misc).is_none() {
            return Err(LuksError::NoDeviceMapper {
                device: device.to_path_buf(),
            });
        }
        let probe = crate::blockdev::open_exclusive(device).map_err(|source| {
            if source.raw_os_error() == Some(libc::EBUSY) {
                LuksError::InUse {
                    device: device.to_path_buf(),
                }
            } else {
                LuksError::Open {
                    device: device.to_path_buf(),
                    source,
                }
            }
        })?;
        if crate::blockdev::kind(&probe).ok() != Some(crate::blockdev::Kind::Block) {
            return Err(LuksError::NotBlockDevice {
                device: device.to_path_buf(),
            });
        }
        let size = crate::blockdev::size_bytes(&probe).map_err(|source| LuksError::Open {
            device: device.to_path_buf(),
            source,
        })?;
        if size < MIN_DEVICE_BYTES {
            return Err(LuksError::TooSmall {
                device: device.to_path_buf(),
                size,
            });
        }
        // The exclusive open succeeded: nothing has it mounted, mapped or claimed. Release it,
        // or libcryptsetup's own exclusive open would fail.
        drop(probe);
        quiet_library_log();
        clear_library_errors();
        let mut cd = CryptInit::init(device).map_err(fail("open the device with libcryptsetup"))?;
        cd.settings_handle()
            .set_pbkdf_type(&CryptPbkdfType {
                type_: CryptKdf::Pbkdf2,
                hash: Some("sha256".to_owned()),
                time_ms: 0,
                iterations: PBKDF2_MIN_ITERATIONS,
                max_memory_kb: 0,
                parallel_threads: 0,
                flags: CryptPbkdf::NO_BENCHMARK,
            })
            .map_err(fail("set the PBKDF parameters"))?;
        let keyslots =
            KeyslotsSize::try_from(KEYSLOTS_SIZE).map_err(fail("size the keyslots area"))?;
        cd.settings_handle()
            .set_metadata_size(METADATA_SIZE, keyslots)
            .map_err(fail("size the metadata area"))?;
        let params = CryptParamsLuks2 {
            pbkdf: None,
            integrity: Some(INTEGRITY.to_owned()),
            // Must be None: the crate passes non-null empty strings, and LUKS2 rejects them.
            integrity_params: None,
            data_alignment: 0,
            data_device: None,
            sector_size: SECTOR_SIZE,
            label: None,
            subsystem: None,
        };
        let mut params_ref: CryptParamsLuks2Ref<'_> = (&params)
            .try_into()
            .map_err(fail("prepare the LUKS2 parameters"))?;
        cd.context_handle()
            .format(
                EncryptionFormat::Luks2,
                CIPHER,
                None,
                Either::Left(key.expose()),
                Some(&mut params_ref),
            )
            .map_err(|e| {
                // The kernel autoloads dm-integrity on first use, so it can only be known to be
                // missing once the format's temporary integrity device failed.
                if !kernel_lists_target("integrity") {
                    LuksError::MissingTarget {
                        device: device.to_path_buf(),
                        target: "integrity",
                    }
                } else {
                    fail("format LUKS2 with integrity")(e)
                }
            })?;
        cd.luks2_flag_handle::<CryptActivate>()
            .persistent_flags_set(CryptActivate::NO_JOURNAL)
            .map_err(fail("set the persistent no-journal flag"))?;
        read_params(&mut cd, device)
    }
}

/// Whether device-mapper lists `target` among its loaded target types (DM_LIST_VERSIONS).
/// Unknown (no device-mapper, ioctl failure) counts as listed, so callers keep the original
/// error.
fn kernel_lists_target(target: &str) -> bool {
    match devicemapper::DM::new().and_then(|dm| dm.list_versions()) {
        Ok(list) => list.iter().any(|(name, ..)| name == target),
        Err(_) => true,
    }
}

/// Route libcryptsetup's messages (which it prints to stderr by default) to
/// [`last_library_errors`] instead; set once per process.
fn quiet_library_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| libcryptsetup_rs::set_log_callback::<()>(Some(log_callback), None));
}

/// Error-level messages libcryptsetup logged on this process, oldest first (at most 16).
static LIBRARY_ERRORS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// `CRYPT_LOG_ERROR` of `libcryptsetup.h`.
const CRYPT_LOG_ERROR: libc::c_int = 1;

fn clear_library_errors() {
    if let Ok(mut g) = LIBRARY_ERRORS.lock() {
        g.clear();
    }
}

/// What libcryptsetup said about the failure, for the error message (` (libcryptsetup: ...)`).
fn said() -> String {
    let msgs = last_library_errors();
    if msgs.is_empty() {
        String::new()
    } else {
        format!(" (libcryptsetup: {})", msgs.join(" "))
    }
}

/// The last error messages libcryptsetup logged (its own words, e.g. "Cannot initialize
/// device-mapper"), for callers that want more than the errno.
pub fn last_library_errors() -> Vec<String> {
    LIBRARY_ERRORS.lock().map(|g| g.clone()).unwrap_or_default()
}

/// # Safety
/// Called by libcryptsetup with `msg` null or a NUL-terminated string valid for the call.
unsafe extern "C" fn log_callback(
    level: libc::c_int,
    msg: *const libc::c_char,
    _usrptr: *mut libc::c_void,
) {
    if level != CRYPT_LOG_ERROR || msg.is_null() {
        return;
    }
    // SAFETY: libcryptsetup passes a valid NUL-terminated string that outlives this call
    // (`crypt_log` in lib/setup.c formats into a local buffer); null was excluded above.
    let text = unsafe { std::ffi::CStr::from_ptr(msg) }
        .to_string_lossy()
        .trim()
        .to_owned();
    if let Ok(mut g) = LIBRARY_ERRORS.lock() {
        if g.len() >= 16 {
            g.remove(0);
        }
        g.push(text);
    }
}

/// Read what activation needs back from the header libcryptsetup holds, plus the tag size from
/// the integrity superblock the kernel wrote at the data offset.
fn read_params(
    cd: &mut libcryptsetup_rs::CryptDevice,
    device: &Path,
) -> Result<LuksParams, LuksError> {
    let fail = |step: &'static str| {
        move |source: libcryptsetup_rs::LibcryptErr| LuksError::Libcryptsetup {
            step,
            device: device.to_path_buf(),
            said: said(),
            source,
        }
    };
    let bad = |what: String| LuksError::UnexpectedHeader {
        device: device.to_path_buf(),
        what,
    };
    let mut status = cd.status_handle();
    let uuid = status
        .get_uuid()
        .map_err(fail("read the header UUID"))?
        .hyphenated()
        .to_string();
    let cipher = status.get_cipher().map_err(fail("read the cipher"))?;
    let cipher_mode = status
        .get_cipher_mode()
        .map_err(fail("read the cipher mode"))?;
    let data_offset_sectors = status.get_data_offset();
    let key_size = usize::try_from(status.get_volume_key_size())
        .map_err(|_| bad("negative volume key size".to_owned()))?;
    // crate's get_integrity_info() dereferences a null string: read the LUKS2 JSON instead.
    let json = status
        .dump_json()
        .map_err(fail("read the LUKS2 metadata"))?;
    let segment = &json["segments"]["0"];
    let integrity = segment["integrity"]["type"]
        .as_str()
        .ok_or_else(|| bad("no integrity in segment 0".to_owned()))?
        .to_owned();
    let sector_size = segment["sector_size"]
        .as_u64()
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| bad("no sector size in segment 0".to_owned()))?;
    let flags: Vec<&str> = json["config"]["flags"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if !flags.contains(&"no-journal") {
        return Err(bad(format!(
            "persistent flag no-journal missing (flags {flags:?})"
        )));
    }
    let sb = read_integrity_superblock(device, data_offset_sectors).map_err(|source| {
        LuksError::Superblock {
            device: device.to_path_buf(),
            source,
        }
    })?;
    if sb.provided_data_sectors.saturating_mul(512) < MIN_DATA_BYTES {
        return Err(bad(format!(
            "only {} data sectors after the header and integrity metadata",
            sb.provided_data_sectors
        )));
    }
    Ok(LuksParams {
        uuid,
        data_offset_sectors,
        sector_size,
        cipher,
        cipher_mode,
        integrity,
        tag_size: u32::from(sb.tag_size),
        key_size,
    })
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
mod tests {
    use super::*;

    /// Keys are 96 random bytes, two draws differ, and Debug never shows a byte.
    #[test]
    fn generated_keys_are_random_and_redacted() {
        let a = VolumeKey::generate().unwrap();
        let b = VolumeKey::generate().unwrap();
        assert_eq!(a.len(), VOLUME_KEY_BYTES);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "VolumeKey([redacted; 96 bytes])");
        let k = VolumeKey::from_bytes(&[0xab; 96]).unwrap();
        assert!(!format!("{k:?}").to_lowercase().contains("ab"));
    }

    /// A key of the wrong length is refused as invalid input.
    #[test]
    fn wrong_key_length_is_refused() {
        let e = VolumeKey::from_bytes(&[0; 64]).unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert!(e.to_string().contains("96"));
    }

    /// On a kernel without device-mapper (this build host), format refuses before writing:
    /// the file keeps its content.
    #[test]
    fn format_without_device_mapper_leaves_the_device_alone() {
        let misc = std::fs::read_to_string("/proc/misc").unwrap_or_default();
        if crate::dm::dm_misc_minor(&misc).is_some() {
            eprintln!("skipping: this kernel has device-mapper");
            return;
        }
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), vec![0x11u8; 1 << 20]).unwrap();
        let key = VolumeKey::generate().unwrap();
        let e = Libcryptsetup.format(f.path(), &key).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Unsupported);
        assert!(e.to_string().contains("no device-mapper"), "{e}");
        assert!(std::fs::read(f.path()).unwrap().iter().all(|&b| b == 0x11));
    }

    /// Formatting a path that does not exist fails with an input error naming the path.
    #[test]
    fn format_of_missing_path_names_it() {
        let key = VolumeKey::generate().unwrap();
        let e = Libcryptsetup
            .format(Path::new("/nonexistent/scratchcrypt-disk"), &key)
            .unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/scratchcrypt-disk"),
            "{e}"
        );
        assert_eq!(e.class(), ErrorClass::InvalidInput, "{e:?}");
    }
}
