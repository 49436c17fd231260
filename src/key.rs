//! The volume key: 96 random bytes that exist only in memory.
//!
//! # Why its own module
//! The key is needed by the header format ([`crate::luks`]), by the crypt table
//! ([`crate::dm_table`]) and by the kernel keyring ([`crate::keyring`]); none of them should
//! depend on another to name it. The buffer is [`Zeroizing`], so it is wiped when dropped, and
//! `Debug` never shows a byte.
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

use zeroize::Zeroizing;

use crate::class::ErrorClass;

/// Length of the volume key: a 64-byte AES-256-XTS key followed by a 32-byte HMAC-SHA256 key
/// (dm-crypt splits an `authenc` key as cipher key then MAC key, `drivers/md/dm-crypt.c`).
pub const VOLUME_KEY_BYTES: usize = 96;

/// The volume key. It lives in a zeroizing buffer and never prints.
pub struct VolumeKey(Zeroizing<Vec<u8>>);

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
            KeyError::Random { .. } => ErrorClass::Io,
            KeyError::Length { .. } => ErrorClass::InvalidInput,
        }
    }
}

impl VolumeKey {
    /// Draw a fresh key from the operating system's CSPRNG (getrandom(2)).
    pub fn generate() -> Result<VolumeKey, KeyError> {
        use rand::TryRngCore;
        let mut key = Zeroizing::new(vec![0u8; VOLUME_KEY_BYTES]);
        rand::rngs::OsRng
            .try_fill_bytes(&mut key)
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
}
