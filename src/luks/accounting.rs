//! How many bytes the format and the writes through the mapping cost on the source device, for
//! the report's `written` categories (issue #12: they must add up to what the device saw).
//!
//! Two things are counted here that the rest of the pipeline cannot see:
//! - **What libcryptsetup writes at format** ([`format_write_bytes`]): `LUKS2_wipe_header_areas`
//!   (`lib/luks2/luks2_json_format.c`) zeroes everything from byte 0 to the data offset, then
//!   fills the keyslots area with random bytes; `crypt_format` zeroes 8 sectors at the data
//!   offset before the kernel writes the integrity superblock over them; the two header copies
//!   (binary header + JSON area, [`super::libcryptsetup`]'s metadata size each) are written
//!   once by `crypt_format` and once more when the persistent `no-journal` flag is stored.
//! - **Integrity tags** ([`TagLayout::tag_write_bytes`]): every data block written through
//!   dm-crypt gets its tag written by dm-integrity into the metadata run of its interleave area.
//!   Tags go through dm-bufio in buffers of `buffer_sectors` (128 sectors, 64 KiB, the kernel's
//!   default, which neither we nor cryptsetup change); a dirty buffer is written from its first
//!   to its last dirty byte, rounded out to 4 KiB (`DM_BUFIO_WRITE_ALIGN`, `submit_io` in
//!   `drivers/md/dm-bufio.c`). The model assumes each buffer is written once per flush phase
//!   (zeroing, then copy, each ending with `fsync`); a buffer written back early under memory
//!   pressure would be written twice, so this is a lower bound, checked against
//!   `/sys/block/<dev>/stat` in the VM (`tests/vm/guest/luks_bytes_add_up.sh`).

use std::ops::Range;

use crate::superblock::IntegritySuperblock;

use super::libcryptsetup::{KEYSLOTS_BYTES, METADATA_BYTES};
use crate::params::SECTOR_SIZE;

/// Bytes libcryptsetup writes to the device during our format, the kernel's integrity
/// superblock and journal excluded (those are `integrity_metadata`).
pub fn format_write_bytes(data_offset_sectors: u64) -> u64 {
    let wipe_to_data_offset = data_offset_sectors.saturating_mul(512);
    // 8 sectors zeroed at the data offset (`_crypt_format_luks2`, before INTEGRITY_format).
    let integrity_sb_wipe = 8 * 512;
    // Both header copies, written by crypt_format and again by persistent_flags_set.
    let header_writes = 2 * 2 * METADATA_BYTES;
    wipe_to_data_offset + KEYSLOTS_BYTES + integrity_sb_wipe + header_writes
}

/// dm-integrity's default `buffer_sectors` (`DEFAULT_BUFFER_SECTORS`), in bytes.
const BUFFER_BYTES: u64 = 128 * 512;

/// `DM_BUFIO_WRITE_ALIGN`: dm-bufio writes partial buffers in 4 KiB units.
const WRITE_ALIGN: u64 = 4096;

/// Where dm-integrity keeps the tags of a data block, as far as write sizes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagLayout {
    /// Data block size in bytes (the integrity `block_size`).
    pub block: u64,
    /// Tag bytes per block.
    pub tag_size: u64,
    /// Data blocks per interleave area (each area has its own run of tags).
    pub area_blocks: u64,
}

impl TagLayout {
    /// The layout a superblock describes.
    pub fn from_superblock(sb: &IntegritySuperblock) -> TagLayout {
        let block = 512u64 << sb.log2_sectors_per_block.min(16);
        let interleave_sectors = 1u64 << sb.log2_interleave_sectors.min(40);
        TagLayout {
            block,
            tag_size: u64::from(sb.tag_size),
            area_blocks: (interleave_sectors * 512 / block).max(1),
        }
    }

    /// The layout our format produces when the superblock cannot be read: 4096-byte blocks,
    /// `tag_size`-byte tags, the kernel's default interleave of 32768 sectors.
    pub fn ours(tag_size: u32) -> TagLayout {
        TagLayout {
            block: u64::from(SECTOR_SIZE),
            tag_size: u64::from(tag_size),
            area_blocks: 32768 * 512 / u64::from(SECTOR_SIZE),
        }
    }

    /// Bytes of tags dm-integrity writes for data written to `ranges` (byte ranges of the
    /// integrity device's data, rounded out to whole blocks) within one flush phase.
    pub fn tag_write_bytes(&self, ranges: &[Range<u64>]) -> u64 {
        if self.block == 0 || self.tag_size == 0 {
            return 0;
        }
        // Tags of one interleave area start buffer-aligned (its metadata run is a whole
        // number of buffers with fix_padding), so buffer i of area a holds the tags of blocks
        // a*area_blocks + i*per_buffer ..+per_buffer.
        let per_buffer = (BUFFER_BYTES / self.tag_size).max(1);
        // (area, buffer in area) -> dirty tag byte range within that buffer.
        let mut dirty: Vec<((u64, u64), Range<u64>)> = Vec::new();
        for r in ranges {
            let first = r.start / self.block;
            let end = r.end.div_ceil(self.block);
            let mut b = first;
            while b < end {
                let area = b / self.area_blocks;
                let in_area = b % self.area_blocks;
                let buffer = in_area / per_buffer;
                let buffer_first = buffer * per_buffer;
                let stop = end
                    .min(area * self.area_blocks + buffer_first + per_buffer)
                    .min((area + 1) * self.area_blocks);
                let lo = (in_area - buffer_first) * self.tag_size;
                let hi = (stop - area * self.area_blocks - buffer_first) * self.tag_size;
                dirty.push(((area, buffer), lo..hi));
                b = stop;
            }
        }
        dirty.sort_by_key(|(k, r)| (*k, r.start));
        let mut total = 0;
        let mut i = 0;
        while i < dirty.len() {
            let key = dirty[i].0;
            let mut lo = dirty[i].1.start;
            let mut hi = dirty[i].1.end;
            while i < dirty.len() && dirty[i].0 == key {
                lo = lo.min(dirty[i].1.start);
                hi = hi.max(dirty[i].1.end);
                i += 1;
            }
            let lo = lo / WRITE_ALIGN * WRITE_ALIGN;
            let hi = hi.div_ceil(WRITE_ALIGN) * WRITE_ALIGN;
            total += hi.min(BUFFER_BYTES) - lo;
        }
        total
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-range slices are the point of these cases
mod tests {
    use super::*;

    const M: u64 = 1 << 20;

    #[test]
    fn header_writes_for_our_minimal_metadata() {
        // 1 MiB zeroed, 4 KiB keyslots, 4 KiB at the data offset, 4 x 16 KiB header copies.
        assert_eq!(format_write_bytes(2048), M + 4096 + 4096 + 4 * 16384);
    }

    #[test]
    fn tags_of_a_large_range_are_one_128th_of_it() {
        let t = TagLayout::ours(32);
        assert_eq!(t.area_blocks, 4096);
        // 64 MiB = 4 areas of 16 MiB: 4 x 128 KiB of tags.
        assert_eq!(t.tag_write_bytes(&[0..64 * M]), 64 * M / 128);
    }

    #[test]
    fn one_block_costs_a_4k_write_of_its_buffer() {
        let t = TagLayout::ours(32);
        assert_eq!(t.tag_write_bytes(&[0..4096]), 4096);
        // Two blocks far apart in the same 64 KiB buffer: the span between them is written.
        assert_eq!(
            t.tag_write_bytes(&[0..4096, 4 * M..4 * M + 4096]),
            36 * 1024
        );
        // The same blocks in different buffers: two 4 KiB writes.
        assert_eq!(t.tag_write_bytes(&[0..4096, 8 * M..8 * M + 4096]), 8192);
    }

    #[test]
    fn ranges_across_an_area_boundary_split() {
        let t = TagLayout::ours(32);
        // The last block of area 0 and the first of area 1.
        assert_eq!(t.tag_write_bytes(&[16 * M - 4096..16 * M + 4096]), 8192);
    }

    #[test]
    fn layout_follows_the_superblock() {
        let sb = IntegritySuperblock {
            version: 5,
            log2_interleave_sectors: 15,
            tag_size: 32,
            journal_sections: 1,
            provided_data_sectors: 1 << 21,
            flags: 0,
            log2_sectors_per_block: 3,
        };
        assert_eq!(TagLayout::from_superblock(&sb), TagLayout::ours(32));
    }
}
