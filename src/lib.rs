//! scratchcrypt turns a raw block device into an encrypted, integrity-protected, ready-to-mount
//! ext4 scratch disk, with a volume key that exists only in memory.
//!
//! # The flow
//! 1. A random 96-byte volume key is drawn into a zeroizing buffer (`key`).
//! 2. The device gets a LUKS2 header with `aes-xts-plain64` + `hmac(sha256)` integrity and
//!    4096-byte sectors, formatted through libcryptsetup **without wiping** the data area
//!    (`luks`).
//! 3. The dm-integrity device `<name>_dif` and the dm-crypt device `<name>` are activated with
//!    device-mapper ioctls (`dm`, tables built in `dm_table`, key via `keyring`).
//! 4. An ext4 image the size of the mapping is built in a sparse temp file with e2fsprogs'
//!    libext2fs, together with the list of ranges (inode tables, bitmaps, journal) that must be
//!    zeroed ([`build_image`]).
//! 5. Those ranges are zeroed through the mapping, then the image's data extents are copied over
//!    it (`sparse`), and the mapping path `/dev/mapper/<name>` is returned.
//!
//! # Why not just run mkfs on the mapping
//! An integrity device that was not wiped has no valid tag for any block, so every read of a
//! block that was never written through the mapping fails with EIO. mkfs, blkid and the ext4
//! driver all read before they write. The rule this crate is built around: every block that the
//! kernel or e2fsck may read is written through the mapping before anything reads it.
//!
//! # Use
//! ```no_run
//! use std::path::Path;
//! use scratchcrypt::{cleanup_crypt_device, encrypt_device, EncryptOptions};
//!
//! let mapper = encrypt_device(Path::new("/dev/vdb"), "scratch", &EncryptOptions::default())?;
//! println!("mount -t ext4 {}", mapper.display());
//! cleanup_crypt_device("scratch")?;
//! # Ok::<(), scratchcrypt::Error>(())
//! ```
//! [`encrypt`] returns the full [`EncryptReport`]; [`build_image`] alone builds the ext4 image
//! and its zero plan (the `format-image` command).
//!
//! # Modules, and who may import whom
//! `docs/DESIGN.md` draws the graph; `tests/architecture.rs` fails on a forbidden edge.
//! - floor: `class` (the error class), imported by anyone;
//! - base types, importing only the floor: `cancel`, `key`, `params`, `superblock`, `extent`, `name`,
//!   `blockdev`, `kernel`, `step`, `loopdev`, `probes` (where libblkid reads a device; pure);
//! - over them: `keyring` and `dm_table`;
//! - leaves, independent of each other: `luks`, `dm`, `format`, `sparse`, `resize`,
//!   `signature` (the data guard);
//! - `error` aggregates the leaves' errors; `pipeline` runs the job; the command-line tool
//!   (`src/bin/scratchcrypt`) uses only this public API.
//!
//! # Features
//! `test-support` makes the internal modules public (with the mocks of the device-mapper and
//! LUKS seams), for this project's own tests, benchmarks and examples. It is not a stable API.

/// The README's library example runs as a doctest (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The crate's internal modules: private, or public with `test-support`. Spelled out twice on
// purpose: tools that follow `mod` statements in the source (cargo-mutants, scripts/mutants.sh)
// cannot see modules declared inside a macro; a macro here made the mutation run find nothing.
// Those tools ignore `cfg` and see every module twice: scripts/mutants.sh mutates a copy whose
// lib.rs keeps one `pub mod` per pair (keep the pairs in this exact two-line form for it).
#[cfg(feature = "test-support")]
pub mod blockdev;
#[cfg(not(feature = "test-support"))]
mod blockdev;
#[cfg(feature = "test-support")]
pub mod cancel;
#[cfg(not(feature = "test-support"))]
mod cancel;
#[cfg(feature = "test-support")]
pub mod class;
#[cfg(not(feature = "test-support"))]
mod class;
#[cfg(feature = "test-support")]
pub mod dm;
#[cfg(not(feature = "test-support"))]
mod dm;
#[cfg(feature = "test-support")]
pub mod dm_table;
#[cfg(not(feature = "test-support"))]
mod dm_table;
#[cfg(feature = "test-support")]
pub mod error;
#[cfg(not(feature = "test-support"))]
mod error;
#[cfg(feature = "test-support")]
pub mod extent;
#[cfg(not(feature = "test-support"))]
mod extent;
#[cfg(feature = "test-support")]
pub mod format;
#[cfg(not(feature = "test-support"))]
mod format;
#[cfg(feature = "test-support")]
pub mod kernel;
#[cfg(not(feature = "test-support"))]
mod kernel;
#[cfg(feature = "test-support")]
pub mod key;
#[cfg(not(feature = "test-support"))]
mod key;
#[cfg(feature = "test-support")]
pub mod keyring;
#[cfg(not(feature = "test-support"))]
mod keyring;
#[cfg(feature = "test-support")]
pub mod luks;
#[cfg(not(feature = "test-support"))]
mod luks;
#[cfg(feature = "test-support")]
pub mod name;
#[cfg(not(feature = "test-support"))]
mod name;
#[cfg(feature = "test-support")]
pub mod params;
#[cfg(not(feature = "test-support"))]
mod params;
#[cfg(feature = "test-support")]
pub mod pipeline;
#[cfg(not(feature = "test-support"))]
mod pipeline;
#[cfg(feature = "test-support")]
pub mod probes;
#[cfg(not(feature = "test-support"))]
mod probes;
#[cfg(feature = "test-support")]
pub mod resize;
#[cfg(not(feature = "test-support"))]
mod resize;
#[cfg(feature = "test-support")]
pub mod signature;
#[cfg(not(feature = "test-support"))]
mod signature;
#[cfg(feature = "test-support")]
pub mod sparse;
#[cfg(not(feature = "test-support"))]
mod sparse;
#[cfg(feature = "test-support")]
pub mod state;
#[cfg(not(feature = "test-support"))]
mod state;
#[cfg(feature = "test-support")]
pub mod step;
#[cfg(not(feature = "test-support"))]
mod step;
#[cfg(feature = "test-support")]
pub mod superblock;
#[cfg(not(feature = "test-support"))]
mod superblock;

/// Loop devices, for the project's root tests and benchmarks only.
#[cfg(feature = "test-support")]
pub mod loopdev;

/// The one skip rule of the tests, shared verbatim with the integration tests.
#[cfg(test)]
#[path = "../tests/support/skip.rs"]
mod test_skip;

pub use cancel::CancelToken;
pub use class::ErrorClass;
pub use dm::DmError;
pub use dm_table::TableError;
pub use error::{Error, Refusal, Result};
pub use extent::{ByteRange, ExtentError};
pub use format::{
    build_image, Ext2Error, FormatError, FormatOptions, FormatPlan, RequestError, ZeroOwners,
};
pub use kernel::ProbeError;
pub use key::{KeyError, VolumeKey, VOLUME_KEY_BYTES};
pub use luks::LuksError;
pub use name::{crypt_device_name, MappingName, NameError};
pub use pipeline::{
    cleanup, cleanup_crypt_device, copy_file_extents, encrypt, encrypt_device, CleanupOptions,
    CleanupOutcome, CopyReport, EncryptOptions, EncryptReport, MountRequest, ProgressFn, StepTime,
    WrittenBytes,
};
pub use pipeline::{
    grow, grow_holding, grow_mounted, growth_status, is_growing, stop_grower, GrowLock,
    GrowOptions, GrowReport, GrowState, GrowthStatus,
};
pub use resize::ResizeError;
pub use signature::{Found, SignatureError};
pub use sparse::SparseError;
pub use step::Step;
pub use superblock::SuperblockError;
