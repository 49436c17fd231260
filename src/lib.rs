//! scratchcrypt turns a raw block device into an encrypted, integrity-protected, ready-to-mount
//! ext4 scratch disk, with a volume key that exists only in memory.
//!
//! # The flow
//! 1. A random 96-byte volume key is drawn into a zeroizing buffer ([`luks`]).
//! 2. The device gets a LUKS2 header with `aes-xts-plain64` + `hmac(sha256)` integrity and
//!    4096-byte sectors, formatted through libcryptsetup **without wiping** the data area
//!    ([`luks`]).
//! 3. The dm-integrity device `<name>_dif` and the dm-crypt device `<name>` are activated with
//!    device-mapper ioctls ([`dm`], tables built in [`dm_table`], key via [`keyring`]).
//! 4. An ext4 image the size of the mapping is built in a sparse temp file with e2fsprogs'
//!    libext2fs, together with the list of ranges (inode tables, journal) that must be zeroed
//!    ([`format`](mod@format)).
//! 5. Those ranges are zeroed through the mapping, then the image's data extents are copied over
//!    it ([`sparse`]), and the mapping path `/dev/mapper/<name>` is returned.
//!
//! # Why not just run mkfs on the mapping
//! An integrity device that was not wiped has no valid tag for any block, so every read of a
//! block that was never written through the mapping fails with EIO. mkfs, blkid and the ext4
//! driver all read before they write. The rule this crate is built around: every block that the
//! kernel or e2fsck may read is written through the mapping before anything reads it.

pub mod blockdev;
pub mod dm;
pub mod dm_table;
pub mod error;
pub mod format;
pub mod keyring;
pub mod loopdev;
pub mod luks;
pub mod name;
pub mod pipeline;
pub mod progress;
pub mod size;
pub mod sparse;

/// The one skip rule of the tests, shared verbatim with the integration tests.
#[cfg(test)]
#[path = "../tests/support/skip.rs"]
mod test_skip;

pub use error::{Error, ErrorClass, Result};
pub use name::{crypt_device_name, MappingName, NameError};
pub use pipeline::{
    cleanup_crypt_device, encrypt_device, CleanupOptions, EncryptOptions, EncryptReport,
};
