//! The volume key: 96 random bytes that exist only in memory.
//!
//! # Why its own module
//! The key is needed by the header format ([`crate::luks`]), by the crypt table
//! ([`crate::dm_table`]) and by the kernel keyring ([`crate::keyring`]); none of them should
//! depend on another to name it. `Debug` never shows a byte.
//!
//! # Where the bytes live
//! Not on the heap: in a page of their own (`SecretPage`), mapped anonymously, locked in RAM
//! (`mlock`: never written to swap), excluded from core dumps (`MADV_DONTDUMP`), and wiped in
//! a forked child (`MADV_WIPEONFORK`: the detached grower of a fast start, which needs no key,
//! sees zeros there). The page is zeroed, unlocked and unmapped on drop. The command-line tool
//! also makes its process non-dumpable with a core size limit of 0 before anything else, so
//! the copies libcryptsetup and the table buffers hold are kept out of core files too.
//!
//! # Example
//! ```
//! use scratchcrypt::VolumeKey;
//!
//! let key = VolumeKey::generate()?;
//! assert_eq!(key.len(), scratchcrypt::VOLUME_KEY_BYTES);
//! assert_eq!(format!("{key:?}"), "VolumeKey([redacted; 96 bytes])");
//! # Ok::<(), scratchcrypt::KeyError>(())
//! ```

use std::fmt;

use crate::class::ErrorClass;

/// Length of the volume key: a 64-byte AES-256-XTS key followed by a 32-byte HMAC-SHA256 key
/// (dm-crypt splits an `authenc` key as cipher key then MAC key, `drivers/md/dm-crypt.c`).
pub const VOLUME_KEY_BYTES: usize = 96;

/// The volume key. It lives in a `SecretPage` (locked, never dumped) and never prints.
pub struct VolumeKey(SecretPage);

/// One anonymous page for secret bytes: locked, not dumped, wiped in forked children, zeroed
/// and unmapped on drop. Holds at most one page of bytes.
pub struct SecretPage {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    map_len: usize,
}

// SAFETY: the page is owned exclusively by this value (mapped by `new`, unmapped only by
// `drop`); sending it to another thread moves that ownership, and shared references only read.
unsafe impl Send for SecretPage {}
// SAFETY: `&SecretPage` gives read-only access to the bytes; writing needs `&mut`.
unsafe impl Sync for SecretPage {}

impl SecretPage {
    /// A zeroed page for `len` bytes (at most one page). `mlock` is best effort (a
    /// RLIMIT_MEMLOCK of 0 refuses it, and the bytes are still kept out of dumps);
    /// `MADV_DONTDUMP` and `MADV_WIPEONFORK` must succeed.
    pub fn new(len: usize) -> Result<SecretPage, KeyError> {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        if len > page {
            return Err(KeyError::Length { len });
        }
        // SAFETY: an anonymous private mapping at an address of the kernel's choice touches no
        // existing memory; the result is checked for MAP_FAILED below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(KeyError::Memory {
                what: "map",
                source: std::io::Error::last_os_error(),
            });
        }
        let ptr = std::ptr::NonNull::new(addr.cast::<u8>()).ok_or(KeyError::Memory {
            what: "map",
            source: std::io::Error::from_raw_os_error(libc::ENOMEM),
        })?;
        // From here `drop` unmaps it.
        let secret = SecretPage {
            ptr,
            len,
            map_len: page,
        };
        for (what, advice) in [
            ("exclude from core dumps", libc::MADV_DONTDUMP),
            ("wipe on fork", libc::MADV_WIPEONFORK),
        ] {
            // SAFETY: `addr..addr+page` is the mapping made above, owned by `secret`.
            if unsafe { libc::madvise(addr, page, advice) } != 0 {
                return Err(KeyError::Memory {
                    what,
                    source: std::io::Error::last_os_error(),
                });
            }
        }
        // SAFETY: as above; mlock only pins the pages of that mapping. Its failure leaves the
        // page unlocked but otherwise as it was, so it is not an error.
        let _ = unsafe { libc::mlock(addr, page) };
        Ok(secret)
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` points to a live mapping of `map_len >= len` bytes, readable, owned by
        // self for the lifetime of the borrow; the anonymous page was initialised (zeroed) by
        // the kernel.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, for writing.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SecretPage {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self.bytes_mut());
        let addr = self.ptr.as_ptr().cast::<libc::c_void>();
        // SAFETY: the mapping made in `new`, of `map_len` bytes, unmapped exactly once here; no
        // reference to it outlives `self`.
        unsafe {
            libc::munlock(addr, self.map_len);
            libc::munmap(addr, self.map_len);
        }
    }
}

impl fmt::Debug for SecretPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretPage([redacted; {} bytes])", self.len)
    }
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The operating system's random generator failed.
    #[error("draw the volume key from the OS random generator")]
    Random {
        /// The getrandom error.
        #[source]
        source: std::io::Error,
    },
    /// The key's memory could not be set up (mapped, excluded from dumps, wiped on fork).
    #[error("{what} the volume key's memory page")]
    Memory {
        /// What failed.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A key of the wrong length was given.
    #[error("volume key must be {VOLUME_KEY_BYTES} bytes, got {len}")]
    Length {
        /// The length given.
        len: usize,
    },
}

impl KeyError {
    /// The class of this error (for exit statuses).
    pub fn class(&self) -> ErrorClass {
        match self {
            KeyError::Random { .. } | KeyError::Memory { .. } => ErrorClass::Io,
            KeyError::Length { .. } => ErrorClass::InvalidInput,
        }
    }
}

impl VolumeKey {
    /// Draw a fresh key from the operating system's CSPRNG (getrandom(2)).
    pub fn generate() -> Result<VolumeKey, KeyError> {
        use rand::TryRngCore;
        let mut key = SecretPage::new(VOLUME_KEY_BYTES)?;
        rand::rngs::OsRng
            .try_fill_bytes(key.bytes_mut())
            .map_err(|e| KeyError::Random {
                source: std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)),
            })?;
        Ok(VolumeKey(key))
    }

    /// A key from given bytes (tests, and re-opening with an exported key in the VM tests).
    pub fn from_bytes(bytes: &[u8]) -> Result<VolumeKey, KeyError> {
        if bytes.len() != VOLUME_KEY_BYTES {
            return Err(KeyError::Length { len: bytes.len() });
        }
        let mut key = SecretPage::new(VOLUME_KEY_BYTES)?;
        key.bytes_mut().copy_from_slice(bytes);
        Ok(VolumeKey(key))
    }

    /// The key bytes. Callers must keep copies in zeroizing buffers.
    pub fn expose(&self) -> &[u8] {
        self.0.bytes()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.bytes().len()
    }

    /// Always false: a key is never empty (present for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.0.bytes().is_empty()
    }
}

impl fmt::Debug for VolumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VolumeKey([redacted; {} bytes])", self.len())
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

    /// The VmFlags of the mapping of this process that holds `addr` (from /proc/self/smaps).
    fn vm_flags_at(addr: usize) -> Vec<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((a, b)) = first.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = (a..b).contains(&addr);
                    continue;
                }
            }
            if inside {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return flags.split_whitespace().map(str::to_owned).collect();
                }
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    /// Issue 26 item 11: the key's bytes are in a page that is excluded from core dumps
    /// (`dd`), wiped in a forked child (`wf`) and locked in RAM (`lo`), and a forked child
    /// reads zeros where the parent has the key.
    #[test]
    fn key_memory_is_locked_undumped_and_wiped_on_fork() {
        for key in [
            VolumeKey::generate().unwrap(),
            VolumeKey::from_bytes(&[0x5a; 96]).unwrap(),
        ] {
            let flags = vm_flags_at(key.expose().as_ptr() as usize);
            for flag in ["dd", "wf", "lo"] {
                assert!(flags.iter().any(|f| f == flag), "{flag} not in {flags:?}");
            }
            assert!(key.expose().iter().any(|b| *b != 0));
            // SAFETY: the child only reads memory and calls _exit (async-signal-safe), so the
            // test harness's other threads do not matter to it.
            match unsafe { nix::unistd::fork() }.unwrap() {
                nix::unistd::ForkResult::Child => {
                    let zero = key.expose().iter().all(|b| *b == 0);
                    // SAFETY: _exit ends the child without running the parent's destructors.
                    unsafe { libc::_exit(if zero { 0 } else { 1 }) }
                }
                nix::unistd::ForkResult::Parent { child } => {
                    let status = nix::sys::wait::waitpid(child, None).unwrap();
                    assert_eq!(
                        status,
                        nix::sys::wait::WaitStatus::Exited(child, 0),
                        "the child saw the key"
                    );
                }
            }
        }
    }

    /// A key of the wrong length is refused as invalid input.
    #[test]
    fn wrong_key_length_is_refused() {
        let e = VolumeKey::from_bytes(&[0; 64]).unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert!(e.to_string().contains("96"));
    }
}
