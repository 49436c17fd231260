//! What a run reports: per-step times, bytes written by category, memory; and `copy-extents`.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::sparse;
use crate::step::Step;

/// How long one step took.
#[derive(Debug, Clone, Serialize)]
pub struct StepTime {
    /// The step.
    pub step: Step,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Bytes written to the source device, by what they are.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WrittenBytes {
    /// What libcryptsetup writes at format: it zeroes the header area up to the data offset,
    /// fills the keyslots area with random bytes, zeroes the integrity superblock's sectors,
    /// and writes both header copies twice (`luks::format_write_bytes`).
    pub luks_header_area: u64,
    /// The dm-integrity superblock and journal, which the kernel writes during format (from
    /// the integrity superblock: 4 KiB plus `journal_sections` sections).
    pub integrity_metadata: u64,
    /// Bytes zeroed through the mapping: the plan's ranges (inode tables, bitmaps, journal)
    /// plus the probe blocks and the read-ahead margins: the sum of `zeroed_metadata`,
    /// `probe_blocks` and `read_ahead_margins`.
    pub zeroed: u64,
    /// The plan's part of `zeroed`, by owner (superblocks and descriptors, descriptor
    /// reserves, bitmaps, inode tables, journal).
    pub zeroed_metadata: crate::format::ZeroOwners,
    /// The part of `zeroed` that libblkid's probers read and nothing else writes (RAID metadata
    /// and ZFS labels at the end of the mapping, `probes`); margins not included.
    pub probe_blocks: u64,
    /// The part of `zeroed` that is read-ahead margin rather than file-system metadata or
    /// probe blocks.
    pub read_ahead_margins: u64,
    /// ext4 metadata copied from the image, through the mapping (the image's data extents:
    /// superblocks, descriptors, bitmaps of the used groups, the root directory and
    /// `lost+found`, the primary descriptor reserve, the journal superblock). Blocks the
    /// zeroing wrote first are written again here and counted in both.
    pub ext4_metadata: u64,
    /// dm-integrity tags written for the zeroed and copied blocks (a model of dm-bufio's
    /// writes, `luks::TagLayout`).
    pub integrity_tags: u64,
}

/// What [`encrypt`](crate::encrypt) did.
#[derive(Debug, Clone, Serialize)]
pub struct EncryptReport {
    /// `/dev/mapper/<name>`.
    pub mapper_path: PathBuf,
    /// The mapping name.
    pub name: String,
    /// The source device.
    pub source: PathBuf,
    /// Size of the source in bytes.
    pub source_bytes: u64,
    /// Size of the mapping (the file system) in bytes.
    pub mapping_bytes: u64,
    /// Whether the key reached the table through the kernel keyring (else as hex).
    pub key_in_keyring: bool,
    /// Per-step wall-clock times, in order.
    pub steps: Vec<StepTime>,
    /// Seconds from start to a ready file system.
    pub total_seconds: f64,
    /// Bytes written to the device, by category.
    pub written: WrittenBytes,
    /// Bytes of data in the temp image.
    pub image_data_bytes: u64,
    /// Number of zeroed ranges.
    pub zero_ranges: usize,
    /// File-system type of the temp dir (from the hole probe).
    pub temp_fs: String,
    /// Peak resident memory of this process, in bytes.
    pub peak_rss_bytes: u64,
    /// Size of the file system when `encrypt` returned, in bytes.
    pub fs_bytes: u64,
    /// Size it grows to (equal to `fs_bytes` unless it was made with a fast start).
    pub target_bytes: u64,
    /// Where the file system was mounted, if asked.
    pub mounted_at: Option<PathBuf>,
}

/// Peak resident set size of this process, in bytes.
pub fn peak_rss_bytes() -> u64 {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        // ru_maxrss is in KiB on Linux.
        Ok(usage) => u64::try_from(usage.max_rss()).unwrap_or(0) * 1024,
        Err(_) => 0,
    }
}

/// The `copy-extents` command: copy `src`'s data extents onto `dst` (a file or block device).
pub fn copy_file_extents(src: &Path, dst: &Path) -> Result<CopyReport> {
    let open_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            what: "open",
            path,
            source,
        }
    };
    let s = File::open(src).map_err(open_err(src))?;
    let d = std::fs::OpenOptions::new()
        .write(true)
        .open(dst)
        .map_err(open_err(dst))?;
    let stats = sparse::copy_extents(&s, src, &d, dst, &mut sparse::no_progress)?;
    Ok(CopyReport {
        bytes_copied: stats.bytes_copied,
        extents: stats.extents,
        seconds: stats.elapsed.as_secs_f64(),
    })
}

/// What `copy-extents` did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// Bytes written to the destination.
    pub bytes_copied: u64,
    /// Data extents copied.
    pub extents: u64,
    /// Wall-clock seconds, fsync included.
    pub seconds: f64,
}
