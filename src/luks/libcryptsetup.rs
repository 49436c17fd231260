//! [`LuksFormatter`] over libcryptsetup (see the flow in the module docs of [`crate::luks`]).

use std::path::Path;

use libcryptsetup_rs::consts::flags::{CryptActivate, CryptPbkdf};
use libcryptsetup_rs::consts::vals::{CryptKdf, KeyslotsSize, MetadataSize};
use libcryptsetup_rs::CryptPbkdfType;

use super::raw_format::{journal_section_bytes, Luks2Integrity, RawDevice, LIBCRYPTSETUP_LOCK};
use super::{LuksError, LuksFormatter};
use crate::key::VolumeKey;
use crate::params::{LuksParams, CIPHER, INTEGRITY, MIN_DATA_BYTES, MIN_DEVICE_BYTES, SECTOR_SIZE};
use crate::superblock::read_integrity_superblock;

/// Integrity tag size of `hmac(sha256)` with a non-random IV: the 32-byte HMAC
/// (`INTEGRITY_tag_size`, `lib/integrity/integrity.c`). Only used to size the journal; the
/// tag size activation uses is read back from the superblock.
pub(super) const TAG_SIZE: u32 = 32;

/// The dm-integrity journal asked for at format: one section, the smallest the kernel lays out
/// (132 KiB with 4096-byte sectors; see `src/luks/raw_format.rs`). We activate without a journal,
/// so it is never used, but the kernel writes all of it at format, and `cryptsetup open`
/// without `--integrity-no-journal` (mode `J`) can still use it.
pub const JOURNAL_BYTES: u64 = journal_section_bytes(SECTOR_SIZE, TAG_SIZE);

/// Smallest JSON metadata area LUKS2 allows (`LUKS2_HDR_16K_LEN`, `lib/luks2/luks2.h`).
const METADATA_SIZE: MetadataSize = MetadataSize::Kb16;

/// [`METADATA_SIZE`] in bytes: one header copy (binary header plus JSON area).
pub(super) const METADATA_BYTES: u64 = 16 * 1024;

/// Smallest non-zero keyslots area: one 4 KiB block (`LUKS2_check_keyslots_area_size`,
/// `lib/luks2/luks2_json_metadata.c`; zero would mean "the default", 16 MiB minus the headers).
const KEYSLOTS_SIZE: u64 = 4096;

/// [`KEYSLOTS_SIZE`], for the byte accounting.
pub(super) const KEYSLOTS_BYTES: u64 = KEYSLOTS_SIZE;

/// Minimum PBKDF2 iterations libcryptsetup accepts (`LUKS_MKD_ITERATIONS_MIN`, `lib/luks1/luks.h`).
const PBKDF2_MIN_ITERATIONS: u32 = 1000;

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
        if !crate::kernel::has_device_mapper() {
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
        // Our raw crypt_format bypasses libcryptsetup-rs's mutex: every libcryptsetup call of
        // this crate happens under this lock instead (a poisoned lock guards no data).
        let _lock = LIBCRYPTSETUP_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        quiet_library_log();
        clear_library_errors();
        let mut rd = RawDevice::init(device).map_err(fail("open the device with libcryptsetup"))?;
        let cd = rd.cd();
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
        // The format creates and removes a temporary dm-integrity device (kernel::dm_integrity_lock).
        let integrity_lock = crate::kernel::dm_integrity_lock();
        let formatted = rd.format_luks2(
            &Luks2Integrity {
                cipher: CIPHER.0,
                cipher_mode: CIPHER.1,
                integrity: INTEGRITY,
                sector_size: SECTOR_SIZE,
                journal_bytes: JOURNAL_BYTES,
            },
            key.expose(),
        );
        drop(integrity_lock);
        formatted.map_err(|e| {
            // The kernel autoloads dm-integrity on first use, so it can only be known to be
            // missing once the format's temporary integrity device failed.
            if crate::kernel::lacks_dm_target("integrity") {
                LuksError::MissingTarget {
                    device: device.to_path_buf(),
                    target: "integrity",
                }
            } else {
                fail("format LUKS2 with integrity")(e)
            }
        })?;
        rd.cd()
            .luks2_flag_handle::<CryptActivate>()
            .persistent_flags_set(CryptActivate::NO_JOURNAL)
            .map_err(fail("set the persistent no-journal flag"))?;
        read_params(rd.cd(), device)
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
    let uuid = status.get_uuid().map_err(fail("read the header UUID"))?;
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
    let params = LuksParams {
        uuid,
        data_offset_sectors,
        sector_size,
        cipher,
        cipher_mode,
        integrity,
        tag_size: u32::from(sb.tag_size),
        key_size,
    };
    // The disk is untrusted (the host controls it): what came back must be what we asked for.
    super::differs_from_request(&params).map_or(Ok(params), |what| Err(bad(what)))
}
