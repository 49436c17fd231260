//! `crypt_format` for LUKS2 + dm-integrity with the integrity journal size passed through.
//!
//! # Why this exists
//! At format time libcryptsetup has the kernel lay out a dm-integrity journal; by default the
//! kernel's own `min(64 MiB, device/128 sectors)` (`DEFAULT_MAX_JOURNAL_SECTORS`,
//! `DEFAULT_JOURNAL_SIZE_FACTOR`, `drivers/md/dm-integrity.c`), and writes all of it. We always
//! activate without a journal (mode `D`), so those up to 64 MiB are written for nothing.
//! `crypt_params_luks2.integrity_params` carries the size (`crypt_params_integrity.journal_size`,
//! which `dm_integrity_target_set` in `lib/libdevmapper.c` turns into `journal_sectors:` of the
//! temporary device that `INTEGRITY_format` loads), but libcryptsetup-rs 0.16 cannot pass it: it
//! turns the `String` fields of its `CryptParamsIntegrity` into non-null empty C strings, which
//! `_crypt_format_luks2` (`lib/setup.c`) refuses (`integrity` must be NULL for LUKS2,
//! `journal_integrity`/`journal_crypt` give ENOTSUP). Its `CryptParams` trait is private, so no
//! other parameter type can be handed to its `format`. This module makes that one call through
//! `libcryptsetup-rs-sys` and hands the context to libcryptsetup-rs for everything else.
//!
//! # The smallest journal
//! The kernel stores the journal as whole sections: `journal_sections = journal_sectors /
//! journal_section_sectors`, and 0 becomes 1 (`initialize_superblock`). One section is 8
//! sectors of journal entries plus the data blocks they describe; with 4096-byte blocks and
//! 32-byte tags an entry is 104 bytes, 4 fit in a 504-byte entry sector, so a section holds 32
//! entries and is `32 * 8 + 8 = 264` sectors (132 KiB). We ask for exactly one section.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{self, NonNull};

use libcryptsetup_rs::{CryptDevice, LibcryptErr};

/// Serialises every libcryptsetup call this crate makes (all of them are in `crate::luks`).
/// The raw calls below bypass libcryptsetup-rs's own mutex, and libcryptsetup keeps
/// process-wide state (crypto backend and device-mapper initialisation counters, the log
/// callback) that is not safe to touch from two threads at once.
pub(super) static LIBCRYPTSETUP_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `JOURNAL_BLOCK_SECTORS` of `drivers/md/dm-integrity.c`: entry sectors per section.
const JOURNAL_BLOCK_SECTORS: u64 = 8;

/// `JOURNAL_SECTOR_DATA`: bytes of entries in one 512-byte journal sector (the last 8 bytes
/// are the commit id).
const JOURNAL_SECTOR_DATA: u64 = 512 - 8;

/// Size in bytes of one dm-integrity journal section for `block_size`-byte blocks and
/// `tag_size`-byte tags, as `calculate_journal_section_size` in `drivers/md/dm-integrity.c`
/// computes it: an entry is the 8-byte sector number, one 8-byte commit id per 512-byte sector
/// of the block and the tag, rounded up to 8 bytes.
pub const fn journal_section_bytes(block_size: u32, tag_size: u32) -> u64 {
    let sectors_per_block = (block_size as u64) / 512;
    let entry = (8 + 8 * sectors_per_block + tag_size as u64).div_ceil(8) * 8;
    let section_entries = JOURNAL_SECTOR_DATA / entry * JOURNAL_BLOCK_SECTORS;
    (section_entries * sectors_per_block + JOURNAL_BLOCK_SECTORS) * 512
}

/// What the LUKS2 format is asked for.
pub(super) struct Luks2Integrity<'a> {
    /// Cipher, e.g. `aes`.
    pub cipher: &'a str,
    /// Mode with IV generator, e.g. `xts-plain64`.
    pub cipher_mode: &'a str,
    /// Integrity algorithm, e.g. `hmac(sha256)`.
    pub integrity: &'a str,
    /// Encryption sector size in bytes.
    pub sector_size: u32,
    /// Requested dm-integrity journal size in bytes (the kernel rounds down to whole
    /// sections, at least one); 0 leaves the kernel's default.
    pub journal_bytes: u64,
}

/// A libcryptsetup context owned by libcryptsetup-rs, plus the raw pointer for the one call the
/// crate cannot make.
pub(super) struct RawDevice {
    /// Owns the context: its `Drop` calls `crypt_free`.
    cd: CryptDevice,
    /// The same context. Valid as long as `cd` lives, i.e. as long as `self`.
    raw: NonNull<libcryptsetup_rs_sys::crypt_device>,
}

impl RawDevice {
    /// `crypt_init` on `device`. The caller holds [`LIBCRYPTSETUP_LOCK`].
    pub(super) fn init(device: &Path) -> Result<RawDevice, LibcryptErr> {
        let path = CString::new(device.as_os_str().as_bytes()).map_err(LibcryptErr::NullError)?;
        let mut out: *mut libcryptsetup_rs_sys::crypt_device = ptr::null_mut();
        // SAFETY: `out` is a valid place for the context pointer and `path` a NUL-terminated
        // string that outlives the call; crypt_init only reads the path and writes `out`.
        // LIBCRYPTSETUP_LOCK (held by the caller) keeps other threads of this crate out of
        // libcryptsetup meanwhile.
        let rc = unsafe { libcryptsetup_rs_sys::crypt_init(&mut out, path.as_ptr()) };
        check(rc)?;
        let raw = NonNull::new(out).ok_or(LibcryptErr::NullPtr)?;
        Ok(RawDevice {
            cd: CryptDevice::from_ptr(raw.as_ptr()),
            raw,
        })
    }

    /// The context, for every call libcryptsetup-rs can make.
    pub(super) fn cd(&mut self) -> &mut CryptDevice {
        &mut self.cd
    }

    /// `crypt_format(LUKS2)` with integrity and the journal size of `spec`, for `key`. The
    /// caller holds [`LIBCRYPTSETUP_LOCK`].
    pub(super) fn format_luks2(
        &mut self,
        spec: &Luks2Integrity<'_>,
        key: &[u8],
    ) -> Result<(), LibcryptErr> {
        let cipher = CString::new(spec.cipher).map_err(LibcryptErr::NullError)?;
        let mode = CString::new(spec.cipher_mode).map_err(LibcryptErr::NullError)?;
        let integrity = CString::new(spec.integrity).map_err(LibcryptErr::NullError)?;
        let subsystem =
            CString::new(crate::params::LUKS2_SUBSYSTEM).map_err(LibcryptErr::NullError)?;
        // Every string and key of the integrity parameters stays NULL: for LUKS2 the
        // integrity algorithm comes from `crypt_params_luks2.integrity`, and journal MAC and
        // encryption are unsupported (`_crypt_format_luks2`). Zero means "kernel default" for
        // the numbers we do not set (`get_dm_integrity_params` omits them from the table), so
        // interleave (32768 sectors) and buffer (128 sectors) stay what our activation table
        // and cryptsetup's assume.
        let ip = libcryptsetup_rs_sys::crypt_params_integrity {
            journal_size: spec.journal_bytes,
            journal_watermark: 0,
            journal_commit_time: 0,
            interleave_sectors: 0,
            tag_size: 0,
            sector_size: 0,
            buffer_sectors: 0,
            integrity: ptr::null(),
            integrity_key_size: 0,
            journal_integrity: ptr::null(),
            journal_integrity_key: ptr::null(),
            journal_integrity_key_size: 0,
            journal_crypt: ptr::null(),
            journal_crypt_key: ptr::null(),
            journal_crypt_key_size: 0,
        };
        let mut params = libcryptsetup_rs_sys::crypt_params_luks2 {
            // NULL: the PBKDF type set on the context before (set_pbkdf_type) applies.
            pbkdf: ptr::null(),
            integrity: integrity.as_ptr(),
            integrity_params: &ip,
            data_alignment: 0,
            data_device: ptr::null(),
            sector_size: spec.sector_size,
            label: ptr::null(),
            subsystem: subsystem.as_ptr(),
        };
        // SAFETY: `self.raw` is the live context owned by `self.cd` (not freed before `self`
        // drops), and `&mut self` means no other borrow of it is in use. Every pointer handed
        // over points into locals of this frame (`cipher`, `mode`, `integrity`, `ip`,
        // `params`, `subsystem`) or into `key`, all alive until the call returns; libcryptsetup copies
        // what it keeps (the volume key into its own locked buffer, the cipher strings into
        // the header) and does not retain the parameter pointers (`_crypt_format_luks2`,
        // `lib/setup.c` 2.6). `key.len()` is the exact length of the key buffer. The string
        // fields of `ip` are NULL, as LUKS2 requires. `crypt_format` takes `params` as
        // `void *` but only reads it. LIBCRYPTSETUP_LOCK (held by the caller) serialises
        // this call with every other libcryptsetup call of this crate; libcryptsetup-rs's
        // own mutex is not taken, which is why all our calls go through that lock.
        let rc = unsafe {
            libcryptsetup_rs_sys::crypt_format(
                self.raw.as_ptr(),
                libcryptsetup_rs_sys::CRYPT_LUKS2.as_ptr().cast(),
                cipher.as_ptr(),
                mode.as_ptr(),
                ptr::null(),
                key.as_ptr().cast(),
                key.len(),
                (&mut params as *mut libcryptsetup_rs_sys::crypt_params_luks2).cast(),
            )
        };
        check(rc)
    }
}

/// libcryptsetup's convention: 0 success, negative errno failure.
fn check(rc: libc::c_int) -> Result<(), LibcryptErr> {
    if rc < 0 {
        Err(LibcryptErr::IOError(std::io::Error::from_raw_os_error(-rc)))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_section_for_4k_blocks_and_32_byte_tags_is_264_sectors() {
        // 8 + 8*8 + 32 = 104-byte entries, 504 / 104 = 4 per sector, 32 per section.
        assert_eq!(journal_section_bytes(4096, 32), 264 * 512);
    }

    #[test]
    fn section_size_follows_the_kernel_for_512_byte_blocks() {
        // 8 + 8 + 32 = 48-byte entries, 10 per sector, 80 per section of 80 + 8 sectors.
        assert_eq!(journal_section_bytes(512, 32), 88 * 512);
    }

    #[test]
    fn a_path_with_nul_is_refused_before_libcryptsetup() {
        let p = Path::new(std::ffi::OsStr::from_bytes(b"/dev/x\0y"));
        assert!(matches!(RawDevice::init(p), Err(LibcryptErr::NullError(_))));
    }
}
