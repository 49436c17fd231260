//! A [`LuksFormatter`] for unit tests of the pipeline: no libcryptsetup, no kernel.
//!
//! It writes what activation reads from a formatted device (the dm-integrity superblock at the
//! data offset) into a regular file, and returns matching [`LuksParams`], so
//! `dm::activate` over the dm mock runs the same code path as for real.

use std::cell::Cell;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{LuksError, LuksFormatter};
use crate::key::{VolumeKey, VOLUME_KEY_BYTES};
use crate::params::{LuksParams, SECTOR_SIZE};
use crate::superblock::IntegritySuperblock;

/// Data offset the mock uses: 1 MiB, as our real format gives.
pub const MOCK_DATA_OFFSET_SECTORS: u64 = 2048;

/// In-memory formatter; can be told to fail.
#[derive(Debug, Default)]
pub struct MockFormatter {
    fail_errno: Cell<Option<i32>>,
    calls: Cell<usize>,
}

impl MockFormatter {
    /// A formatter that succeeds.
    pub fn new() -> MockFormatter {
        MockFormatter::default()
    }

    /// Make the next format fail with `errno` (as libcryptsetup would report it).
    pub fn fail_next(&self, errno: i32) {
        self.fail_errno.set(Some(errno));
    }

    /// How many times format was called.
    pub fn calls(&self) -> usize {
        self.calls.get()
    }
}

impl LuksFormatter for MockFormatter {
    fn format(&self, device: &Path, key: &VolumeKey) -> Result<LuksParams, LuksError> {
        self.calls.set(self.calls.get() + 1);
        let io_err = |source: std::io::Error| LuksError::Open {
            device: device.to_path_buf(),
            source,
        };
        if let Some(errno) = self.fail_errno.take() {
            return Err(io_err(std::io::Error::from_raw_os_error(errno)));
        }
        if key.len() != VOLUME_KEY_BYTES {
            return Err(LuksError::KeySize {
                device: device.to_path_buf(),
                len: key.len(),
            });
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(device)
            .map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        // dm-integrity's share: about 1/64 of the data (journal and tags), as on a real device.
        let data = (size / 512).saturating_sub(MOCK_DATA_OFFSET_SECTORS);
        let provided = (data - data / 64) / 8 * 8;
        if provided == 0 {
            return Err(LuksError::TooSmall {
                device: device.to_path_buf(),
                size,
            });
        }
        let sb = IntegritySuperblock {
            version: 5,
            log2_interleave_sectors: 15,
            tag_size: 32,
            journal_sections: 1,
            provided_data_sectors: provided,
            flags: 1 << 3,
            log2_sectors_per_block: 3,
        };
        file.write_all_at(&sb.encode(), MOCK_DATA_OFFSET_SECTORS * 512)
            .map_err(io_err)?;
        Ok(LuksParams {
            uuid: uuid::Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000),
            data_offset_sectors: MOCK_DATA_OFFSET_SECTORS,
            sector_size: SECTOR_SIZE,
            cipher: "aes".to_owned(),
            cipher_mode: "xts-plain64".to_owned(),
            integrity: "hmac(sha256)".to_owned(),
            tag_size: 32,
            key_size: VOLUME_KEY_BYTES,
        })
    }
}
