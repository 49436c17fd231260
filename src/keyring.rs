//! The volume key in the kernel keyring, for the duration of one table load.
//!
//! # Why
//! A dm-crypt table may name its key as `:<size>:logon:<description>` instead of carrying it
//! in hex. The kernel then copies the key from the caller's keyrings when the table is loaded
//! (`crypt_set_keyring_key`, `drivers/md/dm-crypt.c`), so the key never travels through the
//! ioctl buffer, and `dmsetup table` shows only the description. cryptsetup does the same: it
//! adds a `logon` key (readable by the kernel only, never by user space) to the **thread**
//! keyring, loads the table, then unlinks the key. The load must therefore happen on the thread
//! that holds the [`KeyringKey`].
//!
//! There is no libc wrapper for `add_key(2)`/`keyctl(2)` in glibc, so the raw syscalls are used
//! (constants from `include/uapi/linux/keyctl.h`).

use std::ffi::CString;
use std::io;

use crate::key::VolumeKey;

/// `KEY_SPEC_THREAD_KEYRING`: the calling thread's keyring, created on first use.
const KEY_SPEC_THREAD_KEYRING: libc::c_long = -1;

/// `KEYCTL_UNLINK`.
const KEYCTL_UNLINK: libc::c_long = 9;

/// `KEYCTL_INVALIDATE` (Linux 3.5).
const KEYCTL_INVALIDATE: libc::c_long = 21;

/// A `logon` key in the thread keyring; removed again when dropped.
#[derive(Debug)]
pub struct KeyringKey {
    serial: libc::c_long,
    description: String,
}

impl KeyringKey {
    /// Add `key` as a `logon` key with `description` to the calling thread's keyring.
    ///
    /// Fails with the OS error when the kernel has no keyring support (ENOSYS) or refuses
    /// (EDQUOT, EPERM in some containers); callers then fall back to a hex key in the table.
    pub fn add(description: &str, key: &VolumeKey) -> io::Result<KeyringKey> {
        let ty = CString::new("logon").map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let desc =
            CString::new(description).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let payload = key.expose();
        // SAFETY: add_key reads two NUL-terminated strings and `plen` bytes from `payload`;
        // all three pointers are valid for the duration of the call, and the kernel copies the
        // payload before returning. It writes nothing through them.
        let serial = unsafe {
            libc::syscall(
                libc::SYS_add_key,
                ty.as_ptr(),
                desc.as_ptr(),
                payload.as_ptr(),
                payload.len(),
                KEY_SPEC_THREAD_KEYRING,
            )
        };
        if serial < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(KeyringKey {
            serial,
            description: description.to_owned(),
        })
    }

    /// The key's description, as the table names it.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Invalidate the key (the kernel garbage-collects it at once) and unlink it from the
    /// thread keyring. A table already loaded keeps its own copy.
    pub fn remove(self) -> io::Result<()> {
        let r = self.drop_key();
        std::mem::forget(self);
        r
    }

    fn drop_key(&self) -> io::Result<()> {
        // SAFETY: keyctl with integer arguments only; no memory is passed.
        let inv = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_INVALIDATE, self.serial) };
        // SAFETY: as above.
        let unl = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_UNLINK,
                self.serial,
                KEY_SPEC_THREAD_KEYRING,
            )
        };
        if inv < 0 && unl < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for KeyringKey {
    fn drop(&mut self) {
        let _ = self.drop_key();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A logon key can be added and removed (or the kernel says why not); Debug shows no key.
    #[test]
    fn logon_key_round_trip() {
        let key = VolumeKey::from_bytes(&[0x5a; 96]).unwrap();
        match KeyringKey::add("scratchcrypt:test-d0", &key) {
            Ok(k) => {
                assert_eq!(k.description(), "scratchcrypt:test-d0");
                assert!(!format!("{k:?}").contains("5a5a"));
                k.remove().unwrap();
            }
            Err(e) => {
                crate::test_skip::cannot_run(
                    "keyring::tests::logon_key_round_trip",
                    &format!("kernel keyring unavailable: {e}"),
                );
            }
        }
    }
}
